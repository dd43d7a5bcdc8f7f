"""The app's brain, without widgets: document, history, candidates and the job runner wired together."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from glide_studio.app.document import Document
from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.history import HistoryTree
from glide_studio.app.images import load_image, load_image_bytes
from glide_studio.app.project import ProjectData, load_project, save_project
from glide_studio.app.run_settings import RunSettings, choose_seed, run_request
from glide_studio.app.worker import Job, JobResult, JobRunner, Progress
from glide_studio.pipelines.editbox import EditBoxError
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.png_metadata import MetadataError, read_record, write_png
from glide_studio.runs.record import RunRecord


class StudioController(QObject):
    run_settings_changed = Signal(object)
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
        self._settings = RunSettings()
        self.candidates: np.ndarray | None = None
        self.candidate_record: RunRecord | None = None
        self.viewed_candidate: int | None = None
        self.runner = JobRunner(engine, min_interval, self)
        self.runner.job_step.connect(self._on_step)
        self.runner.job_finished.connect(self._on_finished)
        self.runner.job_failed.connect(lambda _job, message: self.run_failed.emit(message))
        self.runner.job_cancelled.connect(lambda _job: self.run_cancelled.emit())
        self.runner.job_status.connect(lambda _job, text: self.status.emit(text))
        self.runner.busy_changed.connect(self.busy_changed)
        self.preview_source = "pred_x0"

    # --- run settings -----------------------------------------------------------------------------
    @property
    def run_settings(self) -> RunSettings:
        return self._settings

    def set_run_settings(self, settings: RunSettings, announce: bool = False) -> None:
        self._settings = settings
        if announce:
            self.run_settings_changed.emit(settings)

    def restore_run(self, request: Request, reuse_seed: bool = True) -> None:
        """The controls set to what a recorded run used (its pictures stay the document's); its edit box too,
        when it fits this picture."""
        pictures = {name: None for name in ("image", "mask", "sketch")}
        settings = replace(self._settings, request=request.with_(**pictures), random_seed=not reuse_seed)
        self.set_run_settings(settings, announce=True)
        box = request.edit_box
        if box is not None and box.x + box.width <= self.document.width and box.y + box.height <= self.document.height:
            self.document.set_edit_box(box)

    # --- running ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.busy

    def generate(self) -> Job:
        """Queues a run of the current settings on the current picture and layers."""
        settings = self._settings
        document = self.document
        mode = settings.request.mode
        mask = document.mask_array() if document.has_mask() else None
        sketch = document.sketch_array()
        if mode == Mode.INPAINT and mask is None:
            raise StudioError("Paint a mask first: it marks the region to regenerate.")
        if mode == Mode.SDEDIT and not sketch[..., 3].any():
            raise StudioError("Sketch some strokes first (sketch brush); a mask around them is optional.")
        try:
            request = run_request(settings, document.picture, mask, sketch, document.placed_edit_box(),
                                  choose_seed(settings))
        except EditBoxError as error:
            raise StudioError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from error
        whole = EditBox(0, 0, document.width, document.height)
        document.set_edit_box(request.edit_box or whole, automatic=document.box_is_automatic)
        job = Job(request, settings.device, self.preview_source)
        self.runner.submit(job)
        self.run_started.emit(job)
        return job

    def prepare(self) -> Job:
        """Loads and warms the current model family's networks in the background (the window calls this when
        it opens), so the first Ctrl+Enter starts at full speed."""
        return self.runner.prepare(Job(self._settings.request, self._settings.device))

    def cancel(self) -> None:
        self.runner.cancel()

    def _on_step(self, progress: Progress) -> None:
        self.run_step.emit(progress)

    def _on_finished(self, result: JobResult) -> None:
        if result.warning:
            self.status.emit(result.warning)
        self.candidates = result.images
        self.candidate_record = result.record
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
        record = self.candidate_record.for_candidate(index)
        request = record.request
        self.history.add(image, request.prompt or request.mode.value, record)
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
        if node.record is not None:
            pictures = {name: None for name in ("image", "mask", "sketch")}
            request = node.record.request.with_(**pictures, edit_box=None)
            self.set_run_settings(replace(self._settings, request=request, random_seed=True), True)

    # --- files ------------------------------------------------------------------------------------
    def open_image(self, path: str | Path) -> RunRecord | None:
        """Loads a picture as a new document. Returns the run recorded in it, if any."""
        picture = load_image(path)
        self._start_document(picture, Path(path).name)
        try:
            return read_record(path).record
        except MetadataError:
            return None

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
        """The picture with the run that made it (none for a picture that was opened rather than generated)."""
        node = self.history.current
        try:
            write_png(path, self.document.picture, node.record if node is not None else None)
        except OSError as error:
            raise StudioError(f"Could not write {path}: {error}") from error

    def snapshot(self) -> ProjectData:
        document = self.document
        return ProjectData(
            document.picture,
            document.mask_array(),
            document.sketch_array(),
            document.placed_edit_box(),
            self._settings,
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
        self.set_run_settings(data.settings, announce=True)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        return self.runner.shutdown(timeout_ms)
