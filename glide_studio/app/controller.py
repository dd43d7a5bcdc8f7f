"""The app's brain, without widgets: document, history, candidates and the job runner wired together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from glide_studio.app.document import Document
from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.history import HistoryTree
from glide_studio.app.images import load_image, load_image_bytes, read_parameters, save_png
from glide_studio.app.params import GenerationParams, build_request, choose_seed, request_models
from glide_studio.app.project import ProjectData, load_project, save_project
from glide_studio.app.worker import Job, JobResult, JobRunner, Progress
from glide_studio.pipelines.request import Mode, Request


class StudioController(QObject):
    params_changed = Signal(object)
    candidates_changed = Signal()
    candidate_viewed = Signal(int)
    run_started = Signal(object)
    run_step = Signal(object)
    run_finished = Signal(object)
    run_failed = Signal(str)
    run_cancelled = Signal()
    status = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self,
        engine: Engine,
        picture: np.ndarray,
        caption: str = "Starting picture",
        min_interval: float = 1 / 20,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.document = Document(picture, self)
        self.history = HistoryTree(self)
        self.history.start(picture, caption)
        self._params = GenerationParams()
        self.candidates: np.ndarray | None = None
        self.candidate_parameters: dict = {}
        self.viewed_candidate: int | None = None
        self.runner = JobRunner(engine, min_interval, self)
        self.runner.job_step.connect(self._on_step)
        self.runner.job_finished.connect(self._on_finished)
        self.runner.job_failed.connect(lambda _job, message: self.run_failed.emit(message))
        self.runner.job_cancelled.connect(lambda _job: self.run_cancelled.emit())
        self.runner.job_status.connect(lambda _job, text: self.status.emit(text))
        self.runner.busy_changed.connect(self.busy_changed)
        self.preview_source = "pred_x0"

    # --- parameters -------------------------------------------------------------------------------
    @property
    def params(self) -> GenerationParams:
        return self._params

    def set_params(self, params: GenerationParams, announce: bool = False) -> None:
        self._params = params
        if announce:
            self.params_changed.emit(params)

    # --- running ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.busy

    def generate(self) -> Job:
        """Queues a run of the current parameters on the current picture and layers."""
        params = self._params
        document = self.document
        mask = document.mask_array() if document.has_mask() else None
        sketch = document.sketch_array()
        if params.mode == Mode.INPAINT and mask is None:
            raise StudioError("Paint a mask first: it marks the region to regenerate.")
        if params.mode == Mode.SDEDIT and not sketch[..., 3].any():
            raise StudioError("Sketch some strokes first (sketch brush); a mask around them is optional.")
        seed = choose_seed(params)
        request = build_request(params, document.picture, mask, sketch, document.edit_box, seed)
        job = Job(request, params.model, params.device, self.preview_source)
        self.candidate_parameters = params.with_(seed=seed, random_seed=False).to_dict()
        self.runner.submit(job)
        self.run_started.emit(job)
        return job

    def prepare(self) -> Job:
        """Loads and warms the current model family's networks in the background (the window calls this when
        it opens), so the first Ctrl+Enter starts at full speed."""
        params = self._params
        base_model, upsample_model = request_models(params)
        request = Request(mode=params.mode, base_model=base_model, upsample_model=upsample_model,
                          sampler=params.sampler, guidance_scale=params.guidance_scale)
        return self.runner.prepare(Job(request, params.model, params.device))

    def cancel(self) -> None:
        self.runner.cancel()

    def _on_step(self, progress: Progress) -> None:
        self.run_step.emit(progress)

    def _on_finished(self, result: JobResult) -> None:
        self.candidates = result.images
        self.viewed_candidate = None
        self.candidates_changed.emit()
        self.run_finished.emit(result)
        if len(result.images):
            self.view_candidate(0)

    # --- candidates -------------------------------------------------------------------------------
    def view_candidate(self, index: int | None) -> None:
        """None shows the document's own picture again."""
        if index is not None and (self.candidates is None or not 0 <= index < len(self.candidates)):
            return
        self.viewed_candidate = index
        self.candidate_viewed.emit(-1 if index is None else index)

    def accept_candidate(self, index: int | None = None) -> None:
        index = self.viewed_candidate if index is None else index
        if self.candidates is None or index is None or not 0 <= index < len(self.candidates):
            return
        image = self.candidates[index]
        parameters = dict(self.candidate_parameters, candidate=index)
        self.history.add(image, parameters.get("prompt") or parameters.get("mode", "edit"), parameters)
        self.document.set_picture(image)
        self.document.clear_mask()
        self.document.clear_sketch()
        self.discard_candidates()

    def discard_candidates(self) -> None:
        self.candidates = None
        self.viewed_candidate = None
        self.candidates_changed.emit()
        self.candidate_viewed.emit(-1)

    # --- history ----------------------------------------------------------------------------------
    def go_to_node(self, node_id: int) -> None:
        node = self.history.go_to(node_id)
        self.document.set_picture(node.image)
        if node.parameters:
            self.set_params(GenerationParams.from_dict(node.parameters).with_(random_seed=True), True)

    # --- files ------------------------------------------------------------------------------------
    def open_image(self, path: str | Path) -> dict | None:
        """Loads a picture as a new document. Returns the parameters stored in it, if any."""
        picture = load_image(path)
        self._start_document(picture, Path(path).name)
        return read_parameters(path)

    def open_image_bytes(self, data: bytes, caption: str = "Pasted picture") -> None:
        self._start_document(load_image_bytes(data), caption)

    def open_array(self, picture: np.ndarray, caption: str) -> None:
        self._start_document(picture, caption)

    def _start_document(self, picture: np.ndarray, caption: str) -> None:
        self.cancel()
        self.discard_candidates()
        self.document.reset(picture)
        self.history.start(picture, caption)

    def export_png(self, path: str | Path) -> None:
        node = self.history.current
        parameters = dict(node.parameters) if node and node.parameters else self._params.to_dict()
        try:
            save_png(path, self.document.picture, parameters)
        except OSError as error:
            raise StudioError(f"Could not write {path}: {error}") from error

    def snapshot(self) -> ProjectData:
        document = self.document
        return ProjectData(
            document.picture,
            document.mask_array(),
            document.sketch_array(),
            document.edit_box,
            self._params,
            self.history.nodes(),
            self.history.current.id,
        )

    def save_project(self, path: str | Path) -> None:
        try:
            save_project(path, self.snapshot())
        except OSError as error:
            raise StudioError(f"Could not write {path}: {error}") from error

    def load_project(self, path: str | Path) -> None:
        data = load_project(path)
        self.cancel()
        self.discard_candidates()
        self.document.reset(data.picture)
        self.document.set_mask_array(data.mask)
        self.document.set_sketch_array(data.sketch)
        self.document.set_edit_box(data.edit_box)
        self.history.restore(data.nodes, data.current_node)
        self.set_params(data.params, announce=True)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        return self.runner.shutdown(timeout_ms)
