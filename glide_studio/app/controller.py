"""The app's brain, without widgets: document, history, gallery and the job runner wired together.

Every change a user makes goes through here or through the document, and each is written to the document's
journal as it happens (`app.journaling`); replaying the journal through the same methods rebuilds the state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
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
from glide_studio.app.step_archive import DEFAULT_CAP_MB, StepArchive, TimelineStep
from glide_studio.app.worker import Job, JobResult, JobRunner, Paused, Progress
from glide_studio.atomic_files import check_room
from glide_studio.pipelines import editbox
from glide_studio.pipelines.chains import start_over
from glide_studio.pipelines.editbox import EditBoxError
from glide_studio.pipelines.request import MAX_SEED, SD_MODEL_PREFIX, EditBox, Family, Mode, Request
from glide_studio.png_metadata import MetadataError, read_record, write_png
from glide_studio.runs.record import CandidateScore, Resumed, RunRecord, array_digest, changed_fields, pixel_fields

CHAIN_FIELDS = ("strength", "steps", "upsample_steps", "sampler", "eta")
"""The settings that decide a run's chains: going on from one of its states keeps them as the run had them."""

UNARCHIVED_RUNS = 4
"""Runs whose steps wait in memory for the archive's writer; past this the oldest are dropped (their write failed)."""

TIMELINE_CAP_BYTES = 512 * 2**20
"""The most memory the timeline's kept run states may take; the oldest steps' states go first."""


__all__ = ["GalleryRun", "StudioController", "TimelineStep"]


@dataclass
class GalleryRun:
    """One finished run in the gallery: its record and every candidate it made (deleted ones left out)."""

    record: RunRecord
    images: np.ndarray = field(repr=False)
    deleted: set[int] = field(default_factory=set)
    scores: tuple[CandidateScore, ...] = ()
    """Each candidate's match with the caption, when a CLIP for the model was at hand (else empty)."""

    def kept(self) -> list[int]:
        """The candidates not deleted, best match with the caption first when the run was scored."""
        kept = [index for index in range(len(self.images)) if index not in self.deleted]
        if len(self.scores) == len(self.images):
            kept.sort(key=lambda index: -self.scores[index].similarity)
        return kept

    run_id: str = ""
    """Which run this is, across pauses: a run paused and resumed unchanged keeps its id (and its entry), a fork
    gets its own. Its steps are kept in the journal under this id."""
    parent: int | None = None
    """The gallery number of the run this one went on from (a fork, a re-run at another strength), if any."""
    paused_at: tuple[int, int] | None = None
    """(step, total) for a run that stopped there: its candidates are its predictions at that step."""
    ran_with: dict = field(default_factory=dict)
    """Chain settings it ran with that its record does not say (a strength re-run records the level it started
    over at, but ran its stored run's chain): what forking from its steps keeps."""

    def score(self, index: int) -> CandidateScore | None:
        return self.scores[index] if index < len(self.scores) else None

    @property
    def mark(self) -> str:
        """A short sign for the gallery: paused (‖), or gone on from another run (↳); glyphs the usual fonts have."""
        return "‖" if self.paused_at is not None else ("↳" if self.parent is not None else "")

    def lineage(self) -> str:
        """Where the run came from, in words: paused, and which run and step it went on from with what changed."""
        lines = []
        if self.paused_at is not None:
            lines.append(f"Paused after step {self.paused_at[0] + 1} of {self.paused_at[1]}")
        resumed = self.record.resumed
        strength = self.record.request.strength
        if self.parent is not None and resumed is not None and "strength" in resumed.changed:
            lines.append(f"Re-run of run {self.parent + 1} at strength {strength:.2f}, sharing its first "
                         f"{resumed.step + 1} steps")
        elif self.parent is not None and resumed is not None:
            changed = ", ".join(resumed.changed) or "nothing"
            lines.append(f"Fork of run {self.parent + 1} after step {resumed.step + 1}; changed: {changed}")
        elif self.parent is not None:
            lines.append(f"Re-run of run {self.parent + 1} at strength {strength:.2f}")
        return "\n".join(lines)


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
        self.runner.job_failed.connect(self._on_failed)
        self.runner.job_cancelled.connect(self._on_cancelled)
        self.runner.job_paused.connect(self._on_paused)
        self.paused: Paused | None = None
        """A run stopped between two steps, held in memory until it is resumed, replaced or cancelled."""
        self.timeline: list[TimelineStep] = []
        self.timeline_request: Request | None = None
        self.timeline_record: RunRecord | None = None
        self.timeline_chain: dict = {}
        """The timeline's run as the gallery recorded it, when it was read back (its pictures known by digest)."""
        self.timeline_run_id: str | None = None
        self.timeline_cap_bytes = TIMELINE_CAP_BYTES
        self.archive: StepArchive | None = None
        """The steps of past runs, in the journal on disk (set with the journal)."""
        self.steps_cap_bytes = DEFAULT_CAP_MB * 2**20
        self._unarchived: dict[str, list[TimelineStep]] = {}
        """Runs handed to the archive and not yet written: their steps are read from here meanwhile."""
        self._job_runs: dict[int, tuple[str, int | None]] = {}
        """Each of our jobs' run id and the gallery number of the run it went on from."""
        self.runner.job_status.connect(lambda _job, text: self.status.emit(text))
        self.runner.busy_changed.connect(self.busy_changed)
        self.document.layer_committed.connect(self._on_layer_committed)
        self.document.edit_box_changed.connect(self._on_edit_box_changed)
        self.preview_source = "pred_x0"
        self.reference: np.ndarray | None = None
        """The reference picture (IP-Adapter image prompt) that Stable Diffusion runs follow: the document's, like its
        layers, journalled when it is set, and put into every run's settings."""

    # --- the journal ------------------------------------------------------------------------------
    def attach_journal(self, journal: Journal) -> None:
        """From now on every change is journalled; an empty journal first records the document as it is."""
        self.journal = journal
        self._open_archive(journal)
        if journal.count() == 0:
            self._record(*journaling.document_event(self.document.picture, self.history.current.caption))
            self._record(*journaling.settings_event(self._settings))
        self.mark_saved()

    def detach_journal(self) -> None:
        """Stops journalling (the window is closing and its session goes away)."""
        self._close_archive()
        self.journal = None
        self._unjournaled_edits = 0

    def _open_archive(self, journal: Journal) -> None:
        self._close_archive()
        try:
            self.archive = StepArchive.beside(journal.path, self.steps_cap_bytes, self)
        except JournalError as error:
            self.status.emit(f"{error}: older runs' steps will not be kept.")
            return
        self.archive.archived.connect(lambda run_id: self._unarchived.pop(run_id, None))
        self.archive.failed.connect(self.status)

    def _close_archive(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive.deleteLater()
            self.archive = None
        self._unarchived.clear()

    def set_steps_cap(self, megabytes: int) -> None:
        """Keep steps of past runs: at most this many MB of them in the journal (the oldest go first)."""
        self.steps_cap_bytes = max(0, int(megabytes)) * 2**20
        if self.archive is not None:
            self.archive.set_cap(self.steps_cap_bytes)

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
        if self.archive is None or self.archive.path.parent != journal.path.parent:
            self._open_archive(journal)
        shown = self.shown_run if self.shown_run is not None else (len(self.runs) - 1 if self.runs else None)
        if shown is not None:  # with no run picked, the latest run's steps, as right after it ran
            self._load_timeline(shown)
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
        # Settings read back from a journal or the preferences hold no pictures: the reference is the document's.
        settings = replace(settings, request=settings.request.with_(ip_adapter_image=self.reference))
        changed = settings != self._settings
        self._settings = settings
        if changed:
            self._record(*journaling.settings_event(settings))
            self.run_settings_edited.emit(settings)
        if announce:
            self.run_settings_changed.emit(settings)

    def restore_run(self, request: Request, reuse_seed: bool = True) -> list[str]:
        """The controls set to what a recorded run used (its pictures stay the document's); its edit box too,
        when it fits this picture. A model this editor does not know (a foreign A1111 PNG's "sd15") is not
        restored: the current one stays, and the returned lines say what was kept instead."""
        pictures = {name: None for name in ("image", "mask", "sketch")}
        kept, current = [], self._settings.request
        for name in ("base_model", "upsample_model"):
            model = getattr(request, name)
            if model is not None and not _known_model(model):
                request = request.with_(**{name: getattr(current, name)})
                kept.append(f"the model {model!r} is not one this editor has ({getattr(current, name)} kept)")
        settings = replace(self._settings, request=request.with_(**pictures), random_seed=not reuse_seed)
        self.set_run_settings(settings, announce=True)
        box = request.edit_box
        if box is not None and box.x + box.width <= self.document.width and box.y + box.height <= self.document.height:
            self.document.set_edit_box(box)
        return kept

    # --- the reference picture (IP-Adapter) and variations (unCLIP) ---------------------------------------
    def set_reference(self, picture: np.ndarray | None) -> None:
        """The reference picture Stable Diffusion runs follow (None: none), journalled with its pixels."""
        self.reference = None if picture is None else np.ascontiguousarray(np.asarray(picture)[..., :3], np.uint8)
        self._record(*journaling.reference_event(self.reference))
        self.set_run_settings(self._settings, announce=True)

    def set_reference_file(self, path: str | Path) -> None:
        self.set_reference(load_image(path))

    def reference_from_box(self) -> None:
        """The edit box's region of the picture as it is now becomes the reference."""
        box = self.document.edit_box
        self.set_reference(self.document.picture[box.y:box.y + box.height, box.x:box.x + box.width].copy())

    @staticmethod
    def ip_adapter_choices() -> list[tuple[str, str]]:
        """(adapter name, label): the known IP-Adapters, then the user's own (under GLIDE_STUDIO_SD_MODELS)."""
        from glide_studio.sd import registry

        known = [(adapter.name, f"{adapter.name} ({adapter.size_gb:g} GB from the Hub)")
                 for adapter in registry.KNOWN_IP_ADAPTERS]
        return known + registry.user_ip_adapters()

    def makes_variations(self) -> bool:
        """Whether the current model is an unCLIP model (read from its registry entry or folder, never loaded)."""
        from glide_studio.sd.registry import makes_variations

        request = self._settings.request
        return request.family is Family.SD and makes_variations(request.base_model)

    def vary_box(self) -> Job:
        """Variations of this box: the current unCLIP model draws the edit box's region anew from its CLIP image
        embedding, one candidate per seed (seed + i), pasted back through the box; the mode setting stays."""
        if not self.makes_variations():
            raise StudioError("Variations need an unCLIP model (Stable unCLIP, e.g. sd21-unclip-small): pick one in "
                              "the Model list.")
        settings = self._settings.with_request(mode=Mode.GENERATE)
        return self._start(self.request_for(choose_seed(settings), settings))

    # --- running ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.busy

    def generate(self) -> Job:
        """Queues a run of the current settings on the current picture and layers (a paused run is let go)."""
        return self._start(self.request_for(choose_seed(self._settings)))

    def retry_area(self, run: int) -> Job:
        """Draws the gallery run's region again with the next seeds (Retry this area, offered where a candidate
        missed its caption): the run's own caption, mask and box, on the picture as it is now."""
        recorded = self.runs[run].record.request
        seed = (recorded.seed + recorded.batch) % (MAX_SEED + 1)
        same_picture = recorded.image is not None and recorded.image.shape == self.document.picture.shape
        if same_picture and (recorded.mask is not None or recorded.mode != Mode.INPAINT):
            return self._start(recorded.with_(image=self.document.picture, seed=seed))
        settings = replace(self._settings, request=recorded.with_(image=None, mask=None, sketch=None))
        return self._start(self.request_for(seed, settings))

    def _start(self, request: Request, parent: int | None = None) -> Job:
        self._let_paused_go()
        self._set_timeline([], request, uuid.uuid4().hex)
        job = Job(request, self._settings.device, self.preview_source, keep_steps=True)
        return self._submit(job, run=(self.timeline_run_id, parent))

    def _set_timeline(self, steps: list[TimelineStep], request: Request | None, run_id: str | None,
                      record: RunRecord | None = None, ran: Request | None = None) -> None:
        """`request` is the run as recorded, `ran` (if it differs) as it was run: its chain is what a fork keeps."""
        self.timeline, self.timeline_request, self.timeline_run_id = steps, request, run_id
        self.timeline_record = record
        ran = ran or request
        self.timeline_chain = {} if ran is None else {name: getattr(ran, name) for name in CHAIN_FIELDS}
        self.timeline_changed.emit()

    def pause(self) -> None:
        """The run stops after its current step, keeping everything it needs to go on (run_paused)."""
        self.runner.pause()

    def resume(self) -> Job:
        """Goes on with the paused run from the step it stopped at, under the settings, caption, mask and sketch
        as they are now: a fork of it when any of them changed, the same run otherwise."""
        paused = self.paused
        if paused is None:
            raise StudioError("No run is paused.")
        return self._go_on(paused.request, paused.state, paused.index, paused.preview, resuming=True)

    def fork_from(self, index: int) -> Job:
        """A new run that goes on from step `index` of the timeline's run (the latest, or an older one read back
        from the journal), under the settings and layers as they are now (Fork from here)."""
        kept = next((step for step in self.timeline if step.index == index), None)
        state = None if kept is None else self._state_of(kept)
        if state is None or self.timeline_request is None:
            raise StudioError("That step's state is no longer kept (the memory or disk cap for steps): fork from a "
                              "later step, or run again.")
        return self._go_on(self.timeline_request, state, index, kept.preview)

    def rerun_at_strength(self, strength: float) -> Job:
        """The strength scrubber: the timeline's sketch-to-image run again from the noise level `strength`, from
        the same start noise (its seed). Below the level it started at, the run starts over at its kept step
        nearest that level, so the steps above are the stored ones and only the rest is sampled; above it
        (nothing is kept there) it is a fresh run at that strength."""
        parent = self.timeline_request
        if parent is None or parent.mode != Mode.SDEDIT:
            raise StudioError("The strength scrubber re-runs a sketch-to-image run: pick one in the gallery first.")
        if self._settings.request.mode != Mode.SDEDIT:
            raise StudioError("Switch the mode back to Sketch → image to re-run this run at another strength.")
        strength = float(min(1.0, max(0.01, strength)))
        origin = self._gallery_number(self.timeline_run_id)
        best = self.strength_start(strength)
        if best is None:
            self.set_run_settings(self._settings.with_request(strength=strength), announce=True)
            return self._start(self.request_for(parent.seed), parent=origin)
        state = self._state_of(best)
        if state is None:
            raise StudioError("That step's state is no longer kept: re-run at another strength, or run again.")
        request = self.request_for(parent.seed, self._settings.with_request(**self.timeline_chain))
        recorded = request.with_(strength=round(float(best.level), 4))
        self.set_run_settings(self._settings.with_request(strength=recorded.strength), announce=True)
        return self._go_on(parent, start_over(state), best.index, best.preview, request=request, recorded=recorded)

    def strength_start(self, strength: float) -> TimelineStep | None:
        """The kept step a re-run of the timeline's run at `strength` starts over from: the base-stage step whose
        level is nearest, when it is nearer than the level its chain began at; None means a fresh run (exactly at
        that strength: above the chain's start nothing is stored)."""
        parent = self.timeline_request
        if parent is None or parent.mode != Mode.SDEDIT:
            return None
        kept = [step for step in self.timeline if step.stage == "base" and step.can_fork
                and step.level is not None and step.level > 0 and step.index < step.total - 1]
        best = min(kept, key=lambda step: abs(step.level - strength), default=None)
        top = float(self.timeline_chain.get("strength", parent.strength))  # where the stored chain begins
        if best is None or strength > top or abs(best.level - strength) >= top - strength:
            return None
        return best

    def _state_of(self, step: TimelineStep) -> object | None:
        if step.state is not None:
            return step.state
        return None if self.archive is None else self.archive.load_state(step)

    def _gallery_number(self, run_id: str | None) -> int | None:
        return next((number for number in reversed(range(len(self.runs))) if self.runs[number].run_id == run_id),
                    None)

    def _go_on(self, parent: Request, state: object, index: int, preview: np.ndarray | None, *,
               resuming: bool = False, request: Request | None = None, recorded: Request | None = None) -> Job:
        if self._settings.request.mode != parent.mode:
            raise StudioError(f"The paused run goes on in its own mode ({parent.mode.value}): switch back "
                              "to it to resume, or start a new run.")
        ran = request or self.request_for(parent.seed, self._settings.with_request(**self.timeline_chain))
        request = self._with_lock(ran, preview)
        ran_parent = parent.with_(**self.timeline_chain)  # the run gone on from, as it ran
        resumed = Resumed(index, self._changes(ran_parent, recorded or request))
        origin_id = self.timeline_run_id
        origin = self._gallery_number(origin_id)
        same_run = resuming and not resumed.changed and origin_id is not None
        run_id = origin_id if same_run else uuid.uuid4().hex
        parent_number = self.runs[origin].parent if same_run and origin is not None else origin
        self._let_paused_go()
        kept = [step for step in self.timeline if step.index <= index]
        self._set_timeline(kept, recorded or request, run_id, ran=request)
        return self._submit(Job(request, self._settings.device, self.preview_source, resume=state,
                                resumed=resumed, keep_steps=True, recorded=recorded), resumed,
                            run=(run_id, parent_number))

    def _changes(self, parent: Request, request: Request) -> tuple[str, ...]:
        """What differs from the run gone on from; a run read back from the journal knows its pictures by digest."""
        record = self.timeline_record
        pixels = pixel_fields()
        if record is None or any(getattr(parent, name) is not None for name in pixels):
            return changed_fields(parent, request)
        names = [name for name in changed_fields(parent, request) if name not in pixels]
        for name in pixels:
            new, old = getattr(request, name), record.inputs.get(name)
            if (new is None) != (old is None) or (new is not None and array_digest(new, name) != old.sha256):
                names.append(name)
        return tuple(names)

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

    def _submit(self, job: Job, resumed: Resumed | None = None, run: tuple[str, int | None] | None = None) -> Job:
        self._jobs.add(job.id)
        if run is not None:
            self._job_runs[job.id] = run
        self._record(*journaling.run_started_event(job.request, resumed))
        self.runner.submit(job)
        self.run_started.emit(job)
        return job

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._is_own(job_id):
            self._job_runs.pop(job_id, None)
            self.run_failed.emit(message)

    def _on_cancelled(self, job_id: int) -> None:
        if self._is_own(job_id):
            self._job_runs.pop(job_id, None)
            self.run_cancelled.emit()

    def _on_paused(self, paused: Paused) -> None:
        """The paused run joins the gallery (its predictions at that step) and stays there whatever follows; its
        steps so far go to the journal, so it can be scrubbed and forked from after a restart too."""
        if not self._is_own(paused.job_id):
            return
        self.paused = paused
        run_id, parent = self._job_runs.get(paused.job_id, (None, None))
        if paused.record is not None and paused.pictures is not None and run_id is not None:
            ran_with = self._ran_with(paused.record, run_id)
            self._record(*journaling.paused_event(paused.record, paused.pictures, paused.encoded, run_id, parent,
                                                  paused.index, paused.total, ran_with))
            self.add_run(paused.record, paused.pictures, run_id=run_id, parent=parent,
                         paused_at=(paused.index, paused.total), ran_with=ran_with)
        else:
            self._record("run_paused", {"step": paused.index, "total": paused.total})
        self._archive_timeline()
        self.run_paused.emit(paused)

    def _archive_timeline(self) -> None:
        run_id = self.timeline_run_id
        if run_id is None or not self.timeline:
            return
        if self.archive is not None:
            self._unarchived[run_id] = list(self.timeline)
            while len(self._unarchived) > UNARCHIVED_RUNS:  # writes that failed (a full disk) hold no more
                self._unarchived.pop(next(iter(self._unarchived)))
            self.archive.put(run_id, self.timeline)

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
        self._let_paused_go()

    def _let_paused_go(self) -> None:
        """A paused run's job is over: its gallery entry and kept steps stay, its claim on the timeline goes."""
        if self.paused is not None:
            self._job_runs.pop(self.paused.job_id, None)
        self.paused = None

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
        run_id, parent = self._job_runs.pop(result.job_id, (None, None))
        self.keep_result(result, run_id, parent)
        if run_id is not None and run_id == self.timeline_run_id:
            self._archive_timeline()
        self.run_finished.emit(result)

    def keep_result(self, result: JobResult, run_id: str | None = None, parent: int | None = None) -> int:
        """A finished run's candidates join the gallery, journalled; returns the run's number there."""
        run_id = run_id or uuid.uuid4().hex
        ran_with = self._ran_with(result.record, run_id)
        self._record(*journaling.run_event(result.record, result.images, result.encoded, result.scores,
                                           run_id=run_id, parent=parent, ran_with=ran_with))
        return self.add_run(result.record, result.images, result.scores, run_id=run_id, parent=parent,
                            ran_with=ran_with)

    def _ran_with(self, record: RunRecord, run_id: str) -> dict:
        if run_id != self.timeline_run_id:
            return {}
        return {name: value.value if isinstance(value, Enum) else value for name, value in self.timeline_chain.items()
                if getattr(record.request, name) != value}

    def add_run(self, record: RunRecord, images: np.ndarray, scores: tuple[CandidateScore, ...] = (), *,
                run_id: str = "", parent: int | None = None, paused_at: tuple[int, int] | None = None,
                ran_with: dict | None = None) -> int:
        """A run joins the gallery and is shown; returns its number there. A paused run resumed unchanged takes
        the place of its paused entry. A paused run is not shown: the canvas stays on the picture being edited,
        with the paused prediction over it."""
        entry = GalleryRun(record, np.ascontiguousarray(images, dtype=np.uint8), scores=tuple(scores),
                           run_id=run_id, parent=parent, paused_at=paused_at, ran_with=dict(ran_with or {}))
        number = self._gallery_number(run_id) if run_id else None
        if number is not None and self.runs[number].paused_at is not None:
            entry.deleted = set(self.runs[number].deleted)
            self.runs[number] = entry
        else:
            self.runs.append(entry)
            number = len(self.runs) - 1
        self.gallery_changed.emit()
        if paused_at is None:
            self.show_run(number)
        return number

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
        self._load_timeline(run)
        self.viewed_candidate = None
        self.candidates_changed.emit()
        kept = self.runs[run].kept()
        if kept:
            self.view_candidate(kept[0])

    def _load_timeline(self, run: int) -> None:
        """The timeline follows the gallery: an older run's steps come back from the journal (or from memory
        while they are still being written); a run in progress keeps the timeline to itself."""
        entry = self.runs[run]
        if self.replaying or not entry.run_id or entry.run_id == self.timeline_run_id:
            return
        if self.timeline_run_id in {run_id for run_id, _parent in self._job_runs.values()}:
            return  # our run in progress (or paused in the runner's hands) owns the timeline
        steps = self._unarchived.get(entry.run_id)
        if steps is None:
            steps = [] if self.archive is None else self.archive.timeline(entry.run_id)
        ran = entry.record.request.with_(**entry.ran_with) if entry.ran_with else None
        self._set_timeline(list(steps), entry.record.request, entry.run_id, entry.record, ran=ran)

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
        self.reference = None  # a new document starts without one, as its journal does
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
        """Stops the worker and the step archive's writer (steps not yet written are dropped: closing on purpose
        discards the session)."""
        ended = self.runner.shutdown(timeout_ms)
        self._close_archive()
        return ended


def _known_model(name: str) -> bool:
    """A GLIDE checkpoint of the registry, or a Stable Diffusion model by its family prefix."""
    from glide_studio.checkpoints.registry import REGISTRY

    return name in REGISTRY or name.startswith(SD_MODEL_PREFIX)


def _check_painted_inside(box: EditBox, painted: np.ndarray) -> None:
    """A hand-placed box must hold everything painted: the model would silently ignore the rest."""
    outside = np.asarray(painted, dtype=bool).copy()
    outside[box.y: box.y + box.height, box.x: box.x + box.width] = False
    if outside.any():
        raise StudioError("Part of what you painted lies outside the edit box, where the model cannot see it: "
                          "move or enlarge the box, or set it back to automatic (Edit ▸ Automatic edit box).")
