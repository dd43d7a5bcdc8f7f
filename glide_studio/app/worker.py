"""The worker thread: one pipeline at a time off the GUI thread, previews throttled, tensors never emitted.

`GenerationWorker` lives on a QThread and drains a pipeline generator, checking a cancel flag between
steps. `JobRunner` (GUI thread) owns the thread, queues jobs and re-emits the worker's signals.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from itertools import count

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.preview import to_uint8_images
from glide_studio.pipelines.request import Request

_job_ids = count(1)


@dataclass(frozen=True)
class Job:
    request: Request
    family: str = "demo"
    device: str = "cpu"
    preview_source: str = "pred_x0"
    id: int = field(default_factory=lambda: next(_job_ids))
    cancel_event: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def cancel(self) -> None:
        """Thread-safe; the job stops before asking its pipeline for another step."""
        self.cancel_event.set()

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


@dataclass(frozen=True)
class JobResult:
    job_id: int
    images: np.ndarray
    """(N, H, W, 3) uint8 at the picture's size."""
    request: Request


def describe_failure(error: BaseException) -> str:
    if isinstance(error, StudioError):
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
    prepared = Signal(int, str)
    """(job id, "" or why preparing failed)."""

    def __init__(self, engine: Engine, min_interval: float = 1 / 20) -> None:
        super().__init__()
        self.engine = engine
        self.min_interval = min_interval

    @Slot(object)
    def run_job(self, job: Job) -> None:
        if job.cancelled:
            self.cancelled.emit(job.id)
            return
        self.started.emit(job.id)
        steps = None
        try:
            self.status.emit(job.id, "Loading model…")
            self.engine.load_models(job.request, job.device)
            if job.cancelled:
                outcome = ("cancelled",)
            else:
                self.status.emit(job.id, "Running…")
                steps = self.engine.run(job.request)
                outcome = self._drain(job, steps)
        except Exception as error:  # noqa: BLE001 - every failure becomes a message, the app stays up
            traceback.print_exc()
            outcome = ("failed", describe_failure(error))
        finally:
            # Closed before anyone hears the outcome, so the pipeline has let go of its memory by then.
            close = getattr(steps, "close", None)
            if close is not None:
                close()
        self._announce(job, outcome)

    @Slot(object)
    def prepare(self, job: Job) -> None:
        """Loads and warms the job's networks without running it. A failure is only reported: the user's
        own run will meet it again and show it then."""
        try:
            self.engine.prepare(job.request, job.device)
            problem = ""
        except Exception as error:  # noqa: BLE001 - a background warm-up must never take the app down
            problem = describe_failure(error)
        self.prepared.emit(job.id, problem)

    def _announce(self, job: Job, outcome: tuple) -> None:
        kind = outcome[0]
        if kind == "cancelled":
            self.cancelled.emit(job.id)
        elif kind == "failed":
            self.failed.emit(job.id, outcome[1])
        else:
            self.finished.emit(JobResult(job.id, outcome[1], job.request))

    def _drain(self, job: Job, steps) -> tuple:
        start = time.monotonic()
        last_preview = -1e9
        final = None
        for step in steps:
            if job.cancelled:
                return ("cancelled",)
            now = time.monotonic()
            is_last = step.final is not None or step.index >= step.total - 1
            preview = None
            if is_last or step.index == 0 or now - last_preview >= self.min_interval:
                source = step.x_t if job.preview_source == "x_t" else step.pred_x0
                preview = to_uint8_images(source)
                last_preview = now
            self.step.emit(Progress(job.id, step.index, step.total, step.stage, now - start, preview))
            if step.final is not None:
                final = np.ascontiguousarray(step.final, dtype=np.uint8)
        if job.cancelled:
            return ("cancelled",)
        if final is None:
            return ("failed", "The pipeline ended without producing a result.")
        return ("finished", final)


class JobRunner(QObject):
    """GUI-side owner of the worker thread. Jobs run one at a time in submission order."""

    job_started = Signal(int)
    job_status = Signal(int, str)
    job_step = Signal(object)
    job_finished = Signal(object)
    job_failed = Signal(int, str)
    job_cancelled = Signal(int)
    busy_changed = Signal(bool)
    job_prepared = Signal(int, str)
    _dispatch = Signal(object)
    _dispatch_prepare = Signal(object)

    def __init__(self, engine: Engine, min_interval: float = 1 / 20, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
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

    def _on_cancelled(self, job_id: int) -> None:
        if self._is_current(job_id):
            self._end()
            self.job_cancelled.emit(job_id)
