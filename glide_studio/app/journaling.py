"""What the controller writes to a document's journal, and the fold that rebuilds a document from it.

Each event is (kind, data, blobs). Kinds: document (a new picture), layer (the exact pixels a finished stroke,
clear, invert or undo left in a rectangle of the mask or sketch), box, reference (the IP-Adapter picture),
settings, run_started, run (a finished run: its record and every candidate), run_paused (a paused run's
predictions at that step), accept, discard, delete, goto (history, undo/redo of an accept) and history (a
project's tree imported whole). Replaying calls
the same controller methods the live actions did, so the document after a replay is the document before it, bit
for bit (`state_digest`).
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import QRect

from glide_studio.app.document import LAYERS
from glide_studio.app.history import HistoryNode
from glide_studio.app.images import png_bytes
from glide_studio.app.journal import Journal, JournalError, digest_of
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import EditBox, Request
from glide_studio.runs.codec import RecordError, decode, encode
from glide_studio.runs.record import CandidateScore, Resumed, RunRecord, decode_record

if TYPE_CHECKING:
    from glide_studio.app.controller import StudioController
    from glide_studio.app.document import Document

Event = tuple[str, dict, dict]


def _picture(journal: Journal, digest: str) -> np.ndarray:
    with Image.open(io.BytesIO(journal.blob(digest))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _blob(payload: bytes) -> tuple[str, dict]:
    digest = digest_of(payload)
    return digest, {digest: payload}


# -- events ---------------------------------------------------------------------------------------------

def document_event(picture: np.ndarray, caption: str) -> Event:
    digest, blobs = _blob(png_bytes(picture))
    return "document", {"picture": digest, "caption": caption}, blobs


def layer_event(document: Document, layer: str, rect: QRect, detail: dict) -> Event:
    digest, blobs = _blob(zlib.compress(document.layer_patch(layer, rect), 1))
    area = [rect.x(), rect.y(), rect.width(), rect.height()]
    return "layer", {**detail, "layer": layer, "rect": area, "patch": digest}, blobs


def box_event(document: Document) -> Event:
    box = document.edit_box
    return "box", {"box": encode(box), "automatic": document.box_is_automatic}, {}


def reference_event(picture: np.ndarray | None) -> Event:
    """The reference picture Stable Diffusion runs follow (IP-Adapter), or none."""
    if picture is None:
        return "reference", {"picture": None}, {}
    digest, blobs = _blob(png_bytes(picture))
    return "reference", {"picture": digest}, blobs


def settings_event(settings: RunSettings) -> Event:
    return "settings", {"settings": settings.to_json()}, {}


def run_started_event(request: Request, resumed: Resumed | None = None) -> Event:
    """The request as it set off (its seed is the whole of its random state: every draw comes from it), and for
    a resumed run the step it went on from and what changed."""
    data = {"request": encode(request)}
    if resumed is not None:
        data["resumed"] = encode(resumed)
    return "run_started", data, {}


def run_event(record: RunRecord, images: np.ndarray, encoded: Sequence[bytes] | None = None,
              scores: Sequence[CandidateScore] = (), *, run_id: str = "", parent: int | None = None,
              ran_with: dict | None = None) -> Event:
    """A finished run; `run_id` names it across pauses (and its kept steps), `parent` is the gallery number of the
    run it went on from, `ran_with` the chain settings it ran with that its record does not say."""
    payloads = list(encoded) if encoded else [png_bytes(image) for image in images]
    blobs = {digest_of(payload): payload for payload in payloads}
    return "run", {"record": encode(record), "candidates": [digest_of(payload) for payload in payloads],
                   "scores": [[score.similarity, score.background, score.floor] for score in scores],
                   "run_id": run_id, "parent": parent, "ran_with": dict(ran_with or {})}, blobs


def paused_event(record: RunRecord, pictures: np.ndarray, encoded: Sequence[bytes], run_id: str,
                 parent: int | None, step: int, total: int, ran_with: dict | None = None) -> Event:
    """A run paused after `step`: its predictions there join the gallery as that run's entry."""
    _kind, data, blobs = run_event(record, pictures, encoded, run_id=run_id, parent=parent, ran_with=ran_with)
    return "run_paused", {**data, "step": step, "total": total}, blobs


def _scores(data: dict) -> tuple[CandidateScore, ...]:
    """A run event's scores; a journal from before ranking, or a damaged entry, has none."""
    try:
        return tuple(CandidateScore(*(None if value is None else float(value) for value in entry))
                     for entry in data.get("scores") or () if 1 <= len(entry) <= 3 and entry[0] is not None)
    except (TypeError, ValueError):
        return ()


def _lineage(data: dict) -> dict:
    parent = data.get("parent")
    ran_with = data.get("ran_with") or {}
    if not isinstance(ran_with, dict):
        raise TypeError(f"ran_with must be an object, got {ran_with!r}")
    return {"run_id": str(data.get("run_id") or ""), "parent": None if parent is None else int(parent),
            "ran_with": ran_with}


def history_event(nodes: Sequence[HistoryNode], current: int) -> Event:
    entries, blobs = [], {}
    for node in nodes:
        digest, blob = _blob(png_bytes(node.image))
        blobs.update(blob)
        entries.append({"id": node.id, "parent": node.parent_id, "caption": node.caption, "picture": digest,
                        "record": None if node.record is None else encode(node.record), "created": node.created})
    return "history", {"nodes": entries, "current": current}, blobs


# -- the fold ---------------------------------------------------------------------------------------------

def replay(controller: StudioController, journal: Journal) -> None:
    """Applies every event in order (the controller does not journal while `replaying` is set)."""
    for event in journal.events():
        try:
            _apply(controller, journal, event.kind, event.data)
        except (KeyError, TypeError, ValueError, IndexError, RecordError) as error:
            where = f"event {event.seq} ({event.kind}) in {journal.path.name}"
            raise JournalError(f"{where} is damaged: {error}") from error


def _apply(controller: StudioController, journal: Journal, kind: str, data: dict) -> None:
    document = controller.document
    if kind == "document":
        controller.start_document(_picture(journal, data["picture"]), str(data["caption"]))
    elif kind == "layer":
        x, y, width, height = (int(value) for value in data["rect"])
        document.apply_layer_patch(data["layer"], QRect(x, y, width, height),
                                   zlib.decompress(journal.blob(data["patch"])))
    elif kind == "box":
        document.set_edit_box(decode(EditBox, data["box"]), automatic=bool(data["automatic"]))
    elif kind == "reference":
        controller.set_reference(None if data["picture"] is None else _picture(journal, data["picture"]))
    elif kind == "settings":
        controller.set_run_settings(RunSettings.from_json(data["settings"]))
    elif kind == "run":
        images = np.stack([_picture(journal, digest) for digest in data["candidates"]])
        controller.add_run(decode_record(data["record"]), images, _scores(data), **_lineage(data))
    elif kind == "run_paused" and "record" in data:  # older journals' pauses carried no pictures
        images = np.stack([_picture(journal, digest) for digest in data["candidates"]])
        controller.add_run(decode_record(data["record"]), images, **_lineage(data),
                           paused_at=(int(data["step"]), int(data["total"])))
    elif kind == "accept":
        controller.apply_accept(int(data["run"]), int(data["candidate"]))
    elif kind == "discard":
        controller.discard_candidates()
    elif kind == "delete":
        controller.delete_candidate(int(data["run"]), int(data["candidate"]))
    elif kind == "goto":
        controller.go_to_node(int(data["node"]))
    elif kind == "history":
        nodes = [HistoryNode(int(entry["id"]), entry["parent"], _picture(journal, entry["picture"]),
                             str(entry["caption"]),
                             None if entry["record"] is None else decode_record(entry["record"]),
                             float(entry["created"]))
                 for entry in data["nodes"]]
        controller.restore_history(nodes, int(data["current"]))
    # run_started and kinds from a newer version change nothing here


def import_journal(journal: Journal, source: str) -> None:
    """Makes `journal` hold exactly the events and blobs of the journal file `source` (a project's)."""
    try:
        Journal(source).close()  # refuses a damaged or newer file before anything is replaced
        db = journal._db
        db.execute("ATTACH DATABASE ? AS imported", (str(source),))
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM events")
            db.execute("DELETE FROM blobs")
            db.execute("INSERT INTO events SELECT * FROM imported.events")
            db.execute("INSERT INTO blobs SELECT * FROM imported.blobs")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.execute("DETACH DATABASE imported")
    except sqlite3.Error as error:
        raise JournalError(f"the project's journal could not be read ({error})") from error


def state_digest(controller: StudioController) -> str:
    """One hash over everything a document is: picture, both layers' exact pixels, edit box, settings, the
    history tree with its pictures and records, the gallery and what is shown of it."""
    document = controller.document
    digest = hashlib.sha256()

    def add(value) -> None:
        digest.update(value if isinstance(value, bytes) else repr(value).encode())

    add(document.picture.tobytes())
    for layer in LAYERS:
        add(document.layer_patch(layer, QRect(0, 0, document.width, document.height)))
    add((encode(document.edit_box), document.box_is_automatic, controller.run_settings.to_json()))
    for node in controller.history.nodes():
        add((node.id, node.parent_id, node.caption, None if node.record is None else encode(node.record)))
        add(node.image.tobytes())
    add(controller.history.current.id)
    add(None if controller.reference is None else controller.reference.tobytes())
    for run in controller.runs:
        add((encode(run.record), sorted(run.deleted), run.run_id, run.parent, run.paused_at, run.ran_with))
        add(run.images.tobytes())
    add(controller.shown_run)
    return digest.hexdigest()
