"""The app's brain, without widgets: document, history, gallery and the job runner wired together.

Every change a user makes goes through here or through the document, and each is written to the document's
journal as it happens (`app.journaling`); replaying the journal through the same methods rebuilds the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand

from glide_studio.app import journaling
from glide_studio.app.document import Document
from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.history import HistoryTree
from glide_studio.app.images import load_image, load_image_bytes
from glide_studio.app.journal import Journal, JournalError
from glide_studio.app.project import ProjectData, load_project, save_project
from glide_studio.app.run_settings import RunSettings, choose_seed, run_request
from glide_studio.app.worker import Job, JobResult, JobRunner, Paused, Progress
from glide_studio.atomic_files import check_room
from glide_studio.pipelines import editbox
from glide_studio.pipelines.editbox import EditBoxError
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.png_metadata import MetadataError, read_record, write_png
from glide_studio.runs.record import Resumed, RunRecord, changed_fields

TIMELINE_CAP_BYTES = 512 * 2**20
"""The most memory the timeline's kept run states may take; the oldest steps' states go first."""


@dataclass(frozen=True)
class TimelineStep:
    """One step of the latest run, kept for scrubbing (its preview) and forking (its state)."""

    index: int
    total: int
    stage: str
    preview: np.ndarray = field(repr=False)
    state: object | None = field(default=None, repr=False)


@dataclass
class GalleryRun:
    """One finished run in the gallery: its record and every candidate it made (deleted ones left out)."""

    record: RunRecord
    images: np.ndarray = field(repr=False)
    deleted: set[int] = field(default_factory=set)

    def kept(self) -> list[int]:
        return [index for index in range(len(self.images)) if index not in self.deleted]


class AcceptCommand(QUndoCommand):
    """Accepting a candidate, undoable: redo makes it the picture (a new history node the first time),
    undo goes back to the picture it replaced."""

    def __init__(self, controller: StudioController, run: int, candidate: int) -> None:
        super().__init__(f"Accept candidate #{candidate + 1}")
        self.controller, self.run, self.candidate = controller, run, candidate
        self.node_id: int | None = None
        self.parent_id = controller.history.current.id

    def redo(self) -> None:
        if self.node_id is None:
            self.node_id = self.controller.apply_accept(self.run, self.candidate)
        else:
            self.controller.go_to_node(self.node_id, what="Redo accept")

    def undo(self) -> None:
        self.controller.go_to_node(self.parent_id, what="Undo accept")


class StudioController(QObject):
    run_settings_changed = Signal(object)
    """Settings to show in the controls (a restored run, a loaded project)."""
    run_settings_edited = Signal(object)
    """Any change of the settings, however it came (typing in the caption included)."""
    candidates_changed = Signal()
    candidate_viewed = Signal(int)
    gallery_changed = Signal()
    run_started = Signal(object)
    run_step = Signal(object)
    run_finished = Signal(object)
    run_failed = Signal(str)
    run_cancelled = Signal()
    run_paused = Signal(object)
    timeline_changed = Signal()
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
        self.runs: list[GalleryRun] = []
        self.shown_run: int | None = None
        self.viewed_candidate: int | None = None
        self.journal: Journal | None = None
        self.replaying = False
        self._saved_seq = 0
        self._unjournaled_edits = 0
        self.runner = JobRunner(engine, min_interval, self)
        self._jobs: set[int] = set()
        """The runner also serves live painting and outpainting; this controller answers only its own jobs."""
        self.runner.job_step.connect(self._on_step)
        self.runner.job_finished.connect(self._on_finished)
        self.runner.job_failed.connect(lambda job, message: self._is_own(job) and self.run_failed.emit(message))
        self.runner.job_cancelled.connect(lambda job: self._is_own(job) and self.run_cancelled.emit())
        self.runner.job_paused.connect(self._on_paused)
        self.paused: Paused | None = None
        """A run stopped between two steps, held in memory until it is resumed, replaced or cancelled."""
        self.timeline: list[TimelineStep] = []
        self.timeline_request: Request | None = None
        self.timeline_cap_bytes = TIMELINE_CAP_BYTES
        self.runner.job_status.connect(lambda _job, text: self.status.emit(text))
        self.runner.busy_changed.connect(self.busy_changed)
        self.document.layer_committed.connect(self._on_layer_committed)
        self.document.edit_box_changed.connect(self._on_edit_box_changed)
        self.preview_source = "pred_x0"

    # --- the journal ------------------------------------------------------------------------------
    def attach_journal(self, journal: Journal) -> None:
        """From now on every change is journalled; an empty journal first records the document as it is."""
        self.journal = journal
        if journal.count() == 0:
            self._record(*journaling.document_event(self.document.picture, self.history.current.caption))
            self._record(*journaling.settings_event(self._settings))
        self.mark_saved()

    def detach_journal(self) -> None:
        """Stops journalling (the window is closing and its session goes away)."""
        self.journal = None
        self._unjournaled_edits = 0

    def replay(self, journal: Journal) -> None:
        """Rebuilds the document from its journal (recovery, opening a project), then journals into it."""
        self.cancel()
        self.replaying = True
        try:
            journaling.replay(self, journal)
        finally:
            self.replaying = False
        self.document.undo_stack.clear()
        self.journal = journal
        self._saved_seq = 0  # a replayed document is in no file until it is saved
        self.run_settings_changed.emit(self._settings)

    def _record(self, kind: str, data: dict, blobs: dict | None = None) -> None:
        if self.replaying:
            return
        if self.journal is None:
            self._unjournaled_edits += 1
            return
        try:
            self.journal.append(kind, data, blobs)
        except JournalError as error:
            self.status.emit(f"{error}: the last action is on screen but not safe from a crash.")

    def mark_saved(self) -> None:
        self._saved_seq = self.journal.last_seq() if self.journal is not None else 0
        self._unjournaled_edits = 0

    @property
    def has_unsaved_changes(self) -> bool:
        if self.journal is None:
            return self._unjournaled_edits > 0
        return self.journal.last_seq() > self._saved_seq

    def _on_layer_committed(self, layer: str, rect, detail: dict) -> None:
        if not rect.isEmpty():
            self._record(*journaling.layer_event(self.document, layer, rect, detail))

    def _on_edit_box_changed(self) -> None:
        self._record(*journaling.box_event(self.document))

    # --- run settings -----------------------------------------------------------------------------
    @property
    def run_settings(self) -> RunSettings:
        return self._settings

    def set_run_settings(self, settings: RunSettings, announce: bool = False) -> None:
        changed = settings != self._settings
        self._settings = settings
        if changed:
            self._record(*journaling.settings_event(settings))
            self.run_settings_edited.emit(settings)
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
        """Queues a run of the current settings on the current picture and layers (a paused run is let go)."""
        request = self.request_for(choose_seed(self._settings))
        self.paused = None
        self.timeline, self.timeline_request = [], request
        self.timeline_changed.emit()
        return self._submit(Job(request, self._settings.device, self.preview_source, keep_steps=True))

    def pause(self) -> None:
        """The run stops after its current step, keeping everything it needs to go on (run_paused)."""
        self.runner.pause()

    def resume(self) -> Job:
        """Goes on with the paused run from the step it stopped at, under the settings, caption, mask and sketch
        as they are now: a fork of it when any of them changed, the same run otherwise."""
        paused = self.paused
        if paused is None:
            raise StudioError("No run is paused.")
        return self._go_on(paused.request, paused.state, paused.index, paused.preview)

    def fork_from(self, index: int) -> Job:
        """A new run that goes on from step `index` of the timeline's run, under the settings and layers as they
        are now (Fork from here)."""
        kept = next((step for step in self.timeline if step.index == index), None)
        if kept is None or kept.state is None or self.timeline_request is None:
            raise StudioError("That step's state is no longer kept (the timeline's memory cap): fork from a later "
                              "step, or run again.")
        return self._go_on(self.timeline_request, kept.state, index, kept.preview)

    def _go_on(self, parent: Request, state: object, index: int, preview: np.ndarray | None) -> Job:
        if self._settings.request.mode != parent.mode:
            raise StudioError(f"The paused run goes on in its own mode ({parent.mode.value}): switch back "
                              "to it to resume, or start a new run.")
        request = self._with_lock(self.request_for(parent.seed), preview)
        resumed = Resumed(index, changed_fields(parent, request))
        self.paused = None
        self.timeline = [step for step in self.timeline if step.index <= index]
        self.timeline_request = request
        self.timeline_changed.emit()
        return self._submit(Job(request, self._settings.device, self.preview_source, resume=state,
                                resumed=resumed, keep_steps=True), resumed)

    def _with_lock(self, request: Request, preview: np.ndarray | None) -> Request:
        """Pixels locked on the prediction shown at the pause become known pixels of the picture for the rest
        of the run, pasted like the picture's own; the lock layer is then cleared."""
        lock = self.document.lock_array()
        if not lock.any():
            return request
        region = request.mask if request.mask is not None else (
            None if request.sketch is None else request.sketch[..., 3] > 0)
        if request.mode not in (Mode.INPAINT, Mode.SDEDIT) or region is None or preview is None:
            raise StudioError("Locking keeps part of a paused inpaint or sketch run's prediction: clear the lock "
                              "(Edit ▸ Clear lock) to go on without it.")
        region = np.asarray(region) != 0
        locked = lock & region
        boxed = editbox.prepare(request.image, region, None, request.edit_box, preview.shape[1])
        square = np.ascontiguousarray(preview[0])
        image = editbox.paste_back(request.image, square, boxed, locked.astype(np.uint8), feather_px=0)
        self.document.clear_lock()
        return request.with_(image=image, mask=np.where(region & ~locked, 255, 0).astype(np.uint8))

    def _is_own(self, job_id: int) -> bool:
        return job_id in self._jobs

    def _submit(self, job: Job, resumed: Resumed | None = None) -> Job:
        self._jobs.add(job.id)
        self._record(*journaling.run_started_event(job.request, resumed))
        self.runner.submit(job)
        self.run_started.emit(job)
        return job

    def _on_paused(self, paused: Paused) -> None:
        if not self._is_own(paused.job_id):
            return
        self.paused = paused
        self._record("run_paused", {"step": paused.index, "total": paused.total})
        self.run_paused.emit(paused)

    def request_for(self, seed: int, settings: RunSettings | None = None) -> Request:
        """The request a run of `settings` (by default the current ones) on the document makes: checked, with its
        edit box, and room for its results."""
        settings = settings or self._settings
        document = self.document
        mode = settings.request.mode
        mask = document.mask_array() if document.has_mask() else None
        sketch = document.sketch_array()
        if mode == Mode.INPAINT and mask is None:
            raise StudioError("Paint a mask first: it marks the region to regenerate.")
        if mode == Mode.SDEDIT and not sketch[..., 3].any():
            raise StudioError("Sketch some strokes first (sketch brush); a mask around them is optional.")
        placed = document.placed_edit_box()
        if placed is not None and mode in (Mode.INPAINT, Mode.SDEDIT):
            _check_painted_inside(placed, mask if mask is not None else sketch[..., 3] > 0)
        try:
            request = run_request(settings, document.picture, mask, sketch, placed, seed)
        except EditBoxError as error:
            raise StudioError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from error
        self._check_room(request)
        whole = EditBox(0, 0, document.width, document.height)
        document.set_edit_box(request.edit_box or whole, automatic=document.box_is_automatic)
        return request

    def _check_room(self, request: Request) -> None:
        """The run's candidates and inputs go to the journal and the input store: room first, minutes later."""
        if self.journal is None:
            return
        needed = 2 * (request.batch + 3) * self.document.width * self.document.height * 3
        try:
            check_room(self.journal.path.parent, needed)
        except OSError as error:
            raise StudioError(f"No room for this run's results: {error.strerror or error}.") from error

    def prepare(self) -> Job:
        """Loads and warms the current model family's networks in the background (the window calls this when
        it opens), so the first Ctrl+Enter starts at full speed."""
        return self.runner.prepare(Job(self._settings.request, self._settings.device))

    def cancel(self) -> None:
        """Stops the run after its current step; a paused run is let go."""
        self.paused = None
        self.runner.cancel()

    def _on_step(self, progress: Progress) -> None:
        if not self._is_own(progress.job_id):
            return
        if progress.still is not None:
            self.timeline.append(TimelineStep(progress.index, progress.total, progress.stage, progress.still,
                                              progress.state))
            self._cap_timeline()
            self.timeline_changed.emit()
        self.run_step.emit(progress)

    def _cap_timeline(self) -> None:
        """Drops the oldest steps' states (never their previews) past the memory cap."""
        used = sum(getattr(step.state, "size_bytes", 0) for step in self.timeline if step.state is not None)
        for position, step in enumerate(self.timeline):
            if used <= self.timeline_cap_bytes:
                break
            if step.state is not None:
                used -= getattr(step.state, "size_bytes", 0)
                self.timeline[position] = replace(step, state=None)

    def _on_finished(self, result: JobResult) -> None:
        if not self._is_own(result.job_id):
            return
        if result.warning:
            self.status.emit(result.warning)
        self.keep_result(result)
        self.run_finished.emit(result)

    def keep_result(self, result: JobResult) -> int:
        """A finished run's candidates join the gallery, journalled; returns the run's number there."""
        self._record(*journaling.run_event(result.record, result.images, result.encoded))
        return self.add_run(result.record, result.images)

    def add_run(self, record: RunRecord, images: np.ndarray) -> int:
        """A finished run joins the gallery and is shown; returns its number there."""
        self.runs.append(GalleryRun(record, np.ascontiguousarray(images, dtype=np.uint8)))
        self.gallery_changed.emit()
        self.show_run(len(self.runs) - 1)
        return len(self.runs) - 1

    # --- candidates and the gallery -----------------------------------------------------------------
    @property
    def candidates(self) -> np.ndarray | None:
        return None if self.shown_run is None else self.runs[self.shown_run].images

    @property
    def candidate_record(self) -> RunRecord | None:
        return None if self.shown_run is None else self.runs[self.shown_run].record

    def show_run(self, run: int) -> None:
        """Puts a gallery run's candidates on the strip again and views its first kept one."""
        if not 0 <= run < len(self.runs):
            return
        self.shown_run = run
        self.viewed_candidate = None
        self.candidates_changed.emit()
        kept = self.runs[run].kept()
        if kept:
            self.view_candidate(kept[0])

    def view_candidate(self, index: int | None) -> None:
        """None shows the document's own picture again."""
        if index is not None and (self.candidates is None or not 0 <= index < len(self.candidates)):
            return
        self.viewed_candidate = index
        self.candidate_viewed.emit(-1 if index is None else index)

    def accept_candidate(self, index: int | None = None, run: int | None = None) -> None:
        """Makes a candidate (of the shown run, or of any run in the gallery) the picture; Ctrl+Z undoes it."""
        run = self.shown_run if run is None else run
        index = self.viewed_candidate if index is None else index
        if run is None or not 0 <= run < len(self.runs) or index is None or not 0 <= index < len(self.runs[run].images):
            return
        self.document.undo_stack.push(AcceptCommand(self, run, index))

    def apply_accept(self, run: int, index: int) -> int:
        gallery_run = self.runs[run]
        record = gallery_run.record.for_candidate(index)
        request = record.request
        self._record("accept", {"run": run, "candidate": index})
        node = self.history.add(gallery_run.images[index], request.prompt or request.mode.value, record)
        self.document.set_picture(gallery_run.images[index])
        if self._settings.clear_layers_on_accept:
            self.document.clear_mask()
            self.document.clear_sketch()
        self.discard_candidates()
        return node.id

    def discard_candidates(self) -> None:
        """Takes the candidates off the strip; they stay in the gallery."""
        if self.shown_run is not None:
            self._record("discard", {})
        self.shown_run = None
        self.viewed_candidate = None
        self.candidates_changed.emit()
        self.candidate_viewed.emit(-1)

    def delete_candidate(self, run: int, index: int) -> None:
        """Removes a candidate from the gallery (asked for explicitly; the window confirms)."""
        if not 0 <= run < len(self.runs) or index in self.runs[run].deleted:
            return
        self._record("delete", {"run": run, "candidate": index})
        self.runs[run].deleted.add(index)
        self.gallery_changed.emit()
        if run == self.shown_run:
            self.show_run(run) if self.runs[run].kept() else self.discard_candidates()

    # --- history ----------------------------------------------------------------------------------
    def go_to_node(self, node_id: int, what: str = "Go to history node") -> None:
        node = self.history.go_to(node_id)
        self._record("goto", {"node": node_id, "what": what})
        self.document.set_picture(node.image)
        if node.record is not None:
            pictures = {name: None for name in ("image", "mask", "sketch")}
            request = node.record.request.with_(**pictures, edit_box=None)
            self.set_run_settings(replace(self._settings, request=request, random_seed=True), True)

    def restore_history(self, nodes: list, current: int) -> None:
        """A whole history tree (an older project's) takes the place of this one; the picture stays."""
        self._record(*journaling.history_event(nodes, current))
        self.history.restore(nodes, current)

    # --- files ------------------------------------------------------------------------------------
    def open_image(self, path: str | Path) -> RunRecord | None:
        """Loads a picture as a new document. Returns the run recorded in it, if any."""
        picture = load_image(path)
        self.start_document(picture, Path(path).name)
        try:
            return read_record(path).record
        except MetadataError:
            return None

    def open_image_bytes(self, data: bytes, caption: str = "Pasted picture") -> None:
        self.start_document(load_image_bytes(data), caption)

    def open_array(self, picture: np.ndarray, caption: str) -> None:
        self.start_document(picture, caption)

    def start_document(self, picture: np.ndarray, caption: str) -> None:
        self.cancel()
        self.discard_candidates()
        self._record(*journaling.document_event(picture, caption))
        self.runs.clear()
        self.gallery_changed.emit()
        self.document.reset(picture)
        self.document.undo_stack.clear()
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
            save_project(path, self.snapshot(), self.journal)
        except OSError as error:
            raise StudioError(f"Could not write {path}: {error}") from error
        self.mark_saved()

    def load_project(self, path: str | Path) -> None:
        data = load_project(path)
        if data.journal_path is not None:
            try:
                if self.journal is not None:
                    journaling.import_journal(self.journal, str(data.journal_path))
                    self.replay(self.journal)
            finally:
                data.journal_path.unlink(missing_ok=True)
        if data.journal_path is None or self.journal is None:
            self.start_document(data.picture, data.nodes[0].caption if data.nodes else "Project")
            self.document.set_mask_array(data.mask)
            self.document.set_sketch_array(data.sketch)
            self.document.set_edit_box(data.edit_box)
            self.restore_history(data.nodes, data.current_node)
            self.set_run_settings(data.settings, announce=True)
        self.run_settings_changed.emit(self._settings)
        self.mark_saved()

    def state_digest(self) -> str:
        return journaling.state_digest(self)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        return self.runner.shutdown(timeout_ms)


def _check_painted_inside(box: EditBox, painted: np.ndarray) -> None:
    """A hand-placed box must hold everything painted: the model would silently ignore the rest."""
    outside = np.asarray(painted, dtype=bool).copy()
    outside[box.y: box.y + box.height, box.x: box.x + box.width] = False
    if outside.any():
        raise StudioError("Part of what you painted lies outside the edit box, where the model cannot see it: "
                          "move or enlarge the box, or set it back to automatic (Edit ▸ Automatic edit box).")
