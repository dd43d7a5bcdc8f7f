"""The worker thread: one pipeline at a time off the GUI thread, previews throttled, tensors never emitted.

`GenerationWorker` lives on a QThread and drains a pipeline generator, checking a cancel flag between
steps. `JobRunner` (GUI thread) owns the thread, queues jobs and re-emits the worker's signals.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from itertools import count

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.images import png_bytes
from glide_studio.app.preview import to_uint8_images
from glide_studio.app.stills import over_base, paused_pictures
from glide_studio.pipelines.request import Request
from glide_studio.runs.drain import drain
from glide_studio.runs.errors import RunError
from glide_studio.runs.inputs import InputStore
from glide_studio.runs.record import Resumed, RunRecord

_log = logging.getLogger("glide_studio.worker")

_job_ids = count(1)


class JobState(Enum):
    """How a job ended."""

    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


@dataclass(frozen=True)
class Paused:
    """A run stopped between two steps with all it needs to go on: `state` is the pipeline's RunState after
    step `index` (of `total`), on the run's device; `preview` the last (N, h, w, 3) uint8 preview.

    `record`, `pictures` and `encoded` are the paused run as the gallery keeps it (its previews put into the
    picture, and those as PNG files for the journal), made on the worker thread."""

    job_id: int
    request: Request
    state: object = field(repr=False)
    index: int = 0
    total: int = 0
    preview: np.ndarray | None = field(default=None, repr=False)
    record: RunRecord | None = None
    pictures: np.ndarray | None = field(default=None, repr=False)
    encoded: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Outcome:
    state: JobState
    images: np.ndarray | None = None
    message: str = ""
    paused: Paused | None = None


@dataclass(frozen=True)
class Job:
    request: Request
    device: str = "cpu"
    preview_source: str = "pred_x0"
    resume: object | None = field(default=None, compare=False, repr=False)
    """A paused run's RunState: the job continues from it instead of starting from noise."""
    resumed: Resumed | None = None
    """With `resume`: after which step, and what changed since the pause (for the run's record)."""
    keep_steps: bool = False
    """Send every step's preview and state back (the timeline keeps them for scrubbing and forking)."""
    keep_inputs: bool = True
    """Keep the run's input pictures by digest for `repeat` (a live run keeps them only when it is applied)."""
    recorded: Request | None = None
    """What the run's record says was asked for, when that is not `request` (the strength scrubber runs the
    stored run's chain but records the strength it started from)."""
    id: int = field(default_factory=lambda: next(_job_ids))
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    pause_event: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def cancel(self) -> None:
        """Thread-safe; the job stops before asking its pipeline for another step."""
        self.cancel_event.set()

    def pause(self) -> None:
        """Thread-safe; the job stops after its current step and reports the state to go on from."""
        self.pause_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


@dataclass(frozen=True)
class Progress:
    job_id: int
    index: int
    total: int
    stage: str
    elapsed: float
    preview: np.ndarray | None
    """(N, h, w, 3) uint8, or None when this step's preview was skipped by the throttle."""
    still: np.ndarray | None = None
    """This step's preview even when the throttle skipped showing it (for the timeline), when kept."""
    state: object | None = None
    """The run's state after this step, on the CPU (so no GPU tensor crosses a signal), when kept."""
    stage_index: int = 0
    stage_total: int = 0


@dataclass(frozen=True)
class JobResult:
    job_id: int
    images: np.ndarray
    """(N, H, W, 3) uint8 at the picture's size."""
    record: RunRecord
    """The run (candidate 0): its request still holds the input pictures, which are also kept by digest."""
    warning: str = ""
    """Set when the inputs could not be kept (the result is still good, but cannot be repeated)."""
    encoded: tuple[bytes, ...] = ()
    """The images as PNG files, made here off the GUI thread, for the document's journal."""
    scores: tuple = ()
    """Each candidate's CandidateScore against the caption, when a CLIP for the model is at hand."""

    @property
    def request(self) -> Request:
        return self.record.request


def describe_failure(error: BaseException) -> str:
    if isinstance(error, (StudioError, RunError)):
        return str(error)
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return (
            "The device ran out of memory. Try fewer candidates, fewer steps, a smaller edit box, "
            "or the CPU device."
        )
    return f"The generation failed: {type(error).__name__}: {error}"


class GenerationWorker(QObject):
    started = Signal(int)
    status = Signal(int, str)
    step = Signal(object)
    finished = Signal(object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    paused = Signal(object)
    """A Paused: the run stopped between two steps and can go on from its state."""
    prepared = Signal(int, str)
    """(job id, "" or why preparing failed)."""

    def __init__(self, engine: Engine, min_interval: float = 1 / 20, inputs: InputStore | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.min_interval = min_interval
        self.inputs = inputs

    @Slot(object)
    def run_job(self, job: Job) -> None:
        if job.cancelled:
            self.cancelled.emit(job.id)
            return
        self.started.emit(job.id)
        try:
            self.status.emit(job.id, "Loading model…")
            self.engine.load_models(job.request, job.device)
            if job.cancelled:
                outcome = Outcome(JobState.CANCELLED)
            else:
                self.status.emit(job.id, "Running…")
                outcome = self._drain(job)
        except Exception as error:  # noqa: BLE001 - every failure becomes a message, the app stays up
            _log.exception("run %d failed", job.id)  # its traceback, in the log file
            outcome = Outcome(JobState.FAILED, message=describe_failure(error))
        self._announce(job, outcome)

    @Slot(object)
    def prepare(self, job: Job) -> None:
        """Loads and warms the job's networks without running it. A failure is only reported: the user's
        own run will meet it again and show it then."""
        try:
            self.engine.prepare(job.request, job.device)
            problem = ""
        except Exception as error:  # noqa: BLE001 - a background warm-up must never take the app down
            _log.exception("loading the model failed")
            problem = describe_failure(error)
        self.prepared.emit(job.id, problem)

    def _announce(self, job: Job, outcome: Outcome) -> None:
        if outcome.state is JobState.CANCELLED:
            self.cancelled.emit(job.id)
        elif outcome.state is JobState.PAUSED:
            self.paused.emit(outcome.paused)
        elif outcome.state is JobState.FAILED:
            self.failed.emit(job.id, outcome.message)
        else:
            self.finished.emit(self._result(job, outcome.images))

    def _result(self, job: Job, images: np.ndarray) -> JobResult:
        """The run's record, and its inputs kept by digest so that an export can be repeated: done here, off the
        GUI thread, since hashing and writing a large picture takes a while."""
        record = RunRecord.of(job.recorded or job.request, self.engine.context(), resumed=job.resumed)
        warning = ""
        try:
            if job.keep_inputs:
                (self.inputs or InputStore()).put_inputs(record)
        except OSError as error:
            warning = f"The run's inputs could not be kept ({error}); its exports cannot be repeated."
        return JobResult(job.id, images, record, warning, tuple(png_bytes(image) for image in images),
                         self._scores(job, images))

    def _scores(self, job: Job, images: np.ndarray) -> tuple:
        if not job.keep_inputs:  # a live preview is not ranked: it is replaced within the second
            return ()
        try:
            return tuple(self.engine.score(job.request, images))
        except Exception:  # noqa: BLE001 - ranking is a courtesy; the run's result stands without it
            _log.exception("ranking the candidates failed")
            return ()

    def _drain(self, job: Job) -> Outcome:
        """Runs the job's Step stream (one drain for the app, the CLI and the evaluation), emitting throttled
        previews; the stream is closed before anyone hears the outcome, so it has let go of its memory."""
        start = time.monotonic()
        last_preview = -1e9
        paused: list[Paused] = []

        def on_step(step) -> bool:
            nonlocal last_preview
            if job.cancelled:
                return True
            now = time.monotonic()
            is_last = step.final is not None or step.index >= step.total - 1
            pausing = job.pause_event.is_set() and not is_last and step.state is not None
            preview = still = state = None
            if job.keep_steps:
                still = _preview_of(step, job.preview_source)
                state = None if step.state is None else step.state.to("cpu")
            if is_last or pausing or step.index == 0 or now - last_preview >= self.min_interval:
                preview = still if still is not None else _preview_of(step, job.preview_source)
                last_preview = now
            self.step.emit(Progress(job.id, step.index, step.total, step.stage, now - start, preview, still, state,
                                    step.stage_index, step.stage_total))
            if pausing:
                paused.append(self._paused(job, step, preview))
            return pausing

        final = drain(self.engine.run(job.request, resume=job.resume), on_step)
        if job.cancelled:
            return Outcome(JobState.CANCELLED)
        if paused:
            return Outcome(JobState.PAUSED, paused=paused[0])
        if final is None:
            return Outcome(JobState.CANCELLED)
        return Outcome(JobState.FINISHED, final)


    def _paused(self, job: Job, step, preview: np.ndarray) -> Paused:
        """The paused run with its gallery entry: the previews in the picture, as PNGs, and its record."""
        record = RunRecord.of(job.recorded or job.request, self.engine.context(), resumed=job.resumed)
        try:
            pictures = paused_pictures(job.request, preview)
            encoded = tuple(png_bytes(picture) for picture in pictures)
        except (ValueError, OSError):  # a picture that cannot be made only costs the paused run its entry
            _log.exception("the paused run's pictures could not be made")
            pictures, encoded = None, ()
        return Paused(job.id, job.request, step.state, step.index, step.total, preview, record, pictures, encoded)


def _preview_of(step, source: str) -> np.ndarray:
    """The step as the user sees it: its prediction (or x_t); in the upsampler's stage the prediction laid over
    the base result it refines, so that stage never shows noise (its x_t is mostly noise for most of it)."""
    state = step.state
    base = getattr(state, "previous", None)
    if step.stage == "upsample" and base is not None:
        level = getattr(state, "level", None)
        if level is None:
            level = 1 - (step.stage_index + 1) / max(1, step.stage_total)
        return over_base(to_uint8_images(step.pred_x0), base, 1 - level)
    return to_uint8_images(step.x_t if source == "x_t" else step.pred_x0)


GIL_SWITCH_INTERVAL_S = 0.001
"""How long the worker's Python code may keep the GIL from the GUI thread (Python's default is 5 ms): a repaint
takes and gives back the GIL many times, each time waiting up to this long behind the worker."""


class JobRunner(QObject):
    """GUI-side owner of the worker thread. Jobs run one at a time in submission order."""

    job_started = Signal(int)
    job_status = Signal(int, str)
    job_step = Signal(object)
    job_finished = Signal(object)
    job_failed = Signal(int, str)
    job_cancelled = Signal(int)
    job_paused = Signal(object)
    busy_changed = Signal(bool)
    job_prepared = Signal(int, str)
    _dispatch = Signal(object)
    _dispatch_prepare = Signal(object)

    def __init__(self, engine: Engine, min_interval: float = 1 / 20, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._thread = QThread()
        self._thread.setObjectName("glide-studio-worker")
        self.worker = GenerationWorker(engine, min_interval)
        self.worker.moveToThread(self._thread)
        self._dispatch.connect(self.worker.run_job)
        self._dispatch_prepare.connect(self.worker.prepare)
        self.worker.prepared.connect(self.job_prepared)
        self.worker.started.connect(self.job_started)
        self.worker.status.connect(self.job_status)
        self.worker.step.connect(self._on_step)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.paused.connect(self._on_paused)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current_job(self) -> Job | None:
        return self._current

    def submit(self, job: Job) -> Job:
        self._queue.append(job)
        self._start_next()
        return job

    def prepare(self, job: Job) -> Job:
        """Warms the job's networks on the worker thread without running it or making the runner busy; runs
        submitted meanwhile wait for it on the worker's queue (they would load the same networks)."""
        self._dispatch_prepare.emit(job)
        return job

    def cancel(self) -> None:
        """Drops queued jobs and stops the running one after its current step."""
        self._queue.clear()
        if self._current is not None:
            self._current.cancel()

    def pause(self) -> None:
        """The running job stops after its current step and reports where it stopped (job_paused)."""
        if self._current is not None:
            self._current.pause()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancels everything and stops the thread; True when the thread really ended."""
        self.cancel()
        self._thread.quit()
        ended = self._thread.wait(timeout_ms)
        self._current = None
        return bool(ended)

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def _start_next(self) -> None:
        if self._current is not None or not self._queue:
            return
        self._current = self._queue.popleft()
        self.busy_changed.emit(True)
        # The worker gets the job once the GUI thread has finished this event and the paints and layouts it set
        # off: a timer fires only when no posted event is left. Started at once, the worker's set-up (Python,
        # holding the GIL) and the window's repaint of the run's start took turns at the GIL: a 20-36 ms stall.
        QTimer.singleShot(1, self, self._dispatch_current)

    def _dispatch_current(self) -> None:
        if self._current is not None:
            self._dispatch.emit(self._current)

    def _is_current(self, job_id: int) -> bool:
        return self._current is not None and self._current.id == job_id

    def _on_step(self, progress: Progress) -> None:
        if self._is_current(progress.job_id):
            self.job_step.emit(progress)

    def _end(self) -> None:
        self._current = None
        self.busy_changed.emit(False)
        self._start_next()

    def _on_finished(self, result: JobResult) -> None:
        if self._is_current(result.job_id):
            self._end()
            self.job_finished.emit(result)

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._is_current(job_id):
            self._end()
            self.job_failed.emit(job_id, message)

    def _on_paused(self, paused: Paused) -> None:
        if self._is_current(paused.job_id):
            self._end()
            self.job_paused.emit(paused)

    def _on_cancelled(self, job_id: int) -> None:
        if self._is_current(job_id):
            self._end()
            self.job_cancelled.emit(job_id)
