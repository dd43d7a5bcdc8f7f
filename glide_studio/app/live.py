"""Live painting: while it is on, every finished change to the mask, sketch or caption starts a quick run of the
edit box, and the newest result is shown. It is a controller, not a pipeline: inputs are coalesced (the latest
wins), at most one live run is in flight, one in flight is cancelled and replaced when the input changes, and
the runs go through the same runner, worker and pipelines as every other run.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal

from glide_studio.app.controller import StudioController
from glide_studio.app.errors import StudioError
from glide_studio.app.worker import Job, JobResult
from glide_studio.diffusion.samplers import Sampler
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.inputs import InputStore

LIVE_STEPS = 5
"""Steps of a live run (the base stage only, 64 px): about 0.4 s on the demo model on a 2-core CPU."""
LIVE_SAMPLER = Sampler.DPMPP_2M
"""The deterministic DPM-Solver++(2M): at so few steps it settles where the stochastic one still shows noise."""
FULL_AFTER_MS = 1500
"""When the painting stops for this long, the live picture is redone at the full settings (steps, upsampler)."""


def live_request(request: Request) -> Request:
    """A live update of `request`: few deterministic base steps, no upsampler, one candidate."""
    return request.with_(steps=min(LIVE_STEPS, request.steps), sampler=LIVE_SAMPLER, upsample_model=None, batch=1)


class LivePainter(QObject):
    shown = Signal(object)
    """A live result, at the picture's size: the newest that finished."""
    message = Signal(str)

    def __init__(self, controller: StudioController, debounce_ms: int = 40, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.enabled = False
        self.latest: JobResult | None = None
        self.runs_started = 0
        self._job: Job | None = None
        self._wanted: str | None = None  # "live" or "full": the newest input asks for a run of this quality
        self._debounce = QTimer(self, singleShot=True, interval=debounce_ms)
        self._debounce.timeout.connect(lambda: self._want("live"))
        self._idle = QTimer(self, singleShot=True, interval=FULL_AFTER_MS)
        self._idle.timeout.connect(lambda: self._want("full"))
        controller.document.layer_committed.connect(self._input_changed)
        controller.run_settings_edited.connect(self._input_changed)
        runner = controller.runner
        runner.job_finished.connect(self._finished)
        runner.job_failed.connect(self._failed)
        runner.job_cancelled.connect(self._ended)
        runner.busy_changed.connect(lambda busy: None if busy or self._job is not None else self._start())

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if self.enabled:
            self._want("live")
        else:
            self._debounce.stop()
            self._idle.stop()
            self._wanted = None
            if self._job is not None:
                self._job.cancel()

    def _input_changed(self, *args) -> None:
        if self.enabled and not (args and args[0] == "lock"):
            self._idle.stop()
            self._debounce.start()

    def _want(self, quality: str) -> None:
        """The newest input wins: a live run in flight is cancelled and this one starts when it has stopped."""
        self._wanted = quality
        if self._job is not None:
            self._job.cancel()
        elif not self.controller.busy:
            self._start()

    def _start(self) -> None:
        quality, self._wanted = self._wanted, None
        if quality is None or not self.enabled:
            return
        settings = self.controller.run_settings
        if settings.request.mode not in (Mode.INPAINT, Mode.SDEDIT):
            self.message.emit("Live painting works in Inpaint and Sketch → image.")
            return
        live = settings if quality == "full" else replace(settings, request=live_request(settings.request))
        try:
            request = self.controller.request_for(settings.request.seed, live)
        except StudioError as error:
            self.message.emit(str(error))
            return
        self._job = Job(request.with_(batch=1), settings.device, "pred_x0", keep_inputs=False)
        self.runs_started += 1
        self.controller.runner.submit(self._job)

    def _is_mine(self, job_id: int) -> bool:
        return self._job is not None and self._job.id == job_id

    def _finished(self, result: JobResult) -> None:
        if not self._is_mine(result.job_id):
            return
        self._job = None
        self.latest = result
        self.shown.emit(result.images[0])
        if self._wanted is not None:
            self._start()
        elif result.request.steps != self.controller.run_settings.request.steps or \
                result.request.upsample_model != self.controller.run_settings.request.upsample_model:
            self._idle.start()  # a live-quality picture: redo it at full quality once the painting stops

    def _failed(self, job_id: int, message: str) -> None:
        if self._is_mine(job_id):
            self.message.emit(message)
            self._ended(job_id)

    def _ended(self, job_id: int) -> None:
        if self._is_mine(job_id):
            self._job = None
            if self._wanted is not None:
                self._start()

    def apply(self) -> int | None:
        """The live picture becomes a candidate in the gallery (then accept it as any other)."""
        if self.latest is None:
            return None
        try:
            InputStore().put_inputs(self.latest.record)  # so that its exports can be repeated, like any run's
        except OSError as error:
            self.message.emit(f"The live picture's inputs could not be kept ({error}).")
        return self.controller.keep_result(self.latest)
