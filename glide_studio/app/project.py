"""Project files: one zip holding the picture, its layers, every history image and the settings.

Layout: project.json (format version, run settings, history tree with each node's run record, current
node, edit box), picture.png, mask.png, sketch.png, history/<id>.png, and (format 3) journal.sqlite: the
document's whole journal, from which the editor rebuilds it with its gallery; the rest keeps the file
readable without it. Settings and records go through the generic record codec.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from glide_studio.app.errors import ImageLoadError, ProjectError
from glide_studio.app.history import HistoryNode
from glide_studio.app.images import load_image_bytes
from glide_studio.app.journal import Journal
from glide_studio.app.run_settings import RunSettings
from glide_studio.atomic_files import write_atomically
from glide_studio.pipelines.request import EditBox
from glide_studio.runs.codec import RecordError, decode, encode
from glide_studio.runs.record import RunRecord

PROJECT_SUFFIX = ".glidestudio"
PROJECT_FILTER = f"GLIDE Studio projects (*{PROJECT_SUFFIX})"
FORMAT_VERSION = 3
"""1: flat parameters per node; 2: run settings and a run record per node; 3: and the journal."""
JOURNAL_MEMBER = "journal.sqlite"


@dataclass
class ProjectData:
    picture: np.ndarray
    mask: np.ndarray
    sketch: np.ndarray
    edit_box: EditBox | None
    """None: automatic (the default box around the painted region at each run)."""
    settings: RunSettings
    nodes: list[HistoryNode]
    current_node: int
    journal_path: Path | None = None
    """Where load_project extracted the project's journal (a temporary file the caller removes), if it has one."""


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_project(path: str | Path, data: ProjectData, journal: Journal | None = None) -> None:
    """Writes atomically (a temporary file, synced, renamed over the target), so a crash or a full disk never
    leaves half a file and never harms the one already there."""
    path = Path(path)
    manifest = {
        "format": "glide-studio-project",
        "version": FORMAT_VERSION,
        "settings": data.settings.to_json(),
        "edit_box": None if data.edit_box is None else encode(data.edit_box),
        "current_node": data.current_node,
        "nodes": [
            {
                "id": node.id,
                "parent": node.parent_id,
                "caption": node.caption,
                "record": None if node.record is None else encode(node.record),
                "created": node.created,
            }
            for node in data.nodes
        ],
    }
    with tempfile.TemporaryDirectory() as scratch:
        journal_copy = Path(scratch) / JOURNAL_MEMBER
        if journal is not None:
            journal.copy_to(journal_copy)

        def write(file) -> None:
            with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr("project.json", json.dumps(manifest, indent=1))
                archive.writestr("picture.png", _png_bytes(data.picture))
                archive.writestr("mask.png", _png_bytes(data.mask))
                archive.writestr("sketch.png", _png_bytes(data.sketch))
                for node in data.nodes:
                    archive.writestr(f"history/{node.id}.png", _png_bytes(node.image))
                if journal is not None:
                    archive.write(journal_copy, JOURNAL_MEMBER, compress_type=zipfile.ZIP_DEFLATED)

        write_atomically(path, write)


def load_project(path: str | Path) -> ProjectData:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("project.json"))
            if manifest.get("format") != "glide-studio-project":
                raise ProjectError(f"{path.name} is not a GLIDE Studio project.")
            if int(manifest.get("version", 0)) > FORMAT_VERSION:
                raise ProjectError(
                    f"{path.name} was saved by a newer GLIDE Studio (format "
                    f"{manifest['version']}); please update."
                )
            picture = load_image_bytes(archive.read("picture.png"), "the project's picture")
            mask = _grey(archive.read("mask.png"))
            sketch = _rgba(archive.read("sketch.png"))
            nodes = [
                HistoryNode(
                    int(entry["id"]),
                    None if entry["parent"] is None else int(entry["parent"]),
                    load_image_bytes(archive.read(f"history/{entry['id']}.png"), "a history image"),
                    str(entry.get("caption", "")),
                    _node_record(entry),
                    float(entry.get("created", 0.0)),
                )
                for entry in manifest["nodes"]
            ]
            box = _edit_box(manifest.get("edit_box"))
            current = int(manifest["current_node"])
            journal_path = _extract_journal(archive)
    except FileNotFoundError as error:
        raise ProjectError(f"{path} does not exist.") from error
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, ImageLoadError, OSError) as error:
        raise ProjectError(f"{path.name} is damaged or incomplete ({error}).") from error
    if mask.shape != picture.shape[:2] or sketch.shape[:2] != picture.shape[:2]:
        raise ProjectError(f"{path.name} is damaged: its layers do not match the picture's size.")
    if not nodes or current not in {node.id for node in nodes}:
        raise ProjectError(f"{path.name} is damaged: its history is empty or inconsistent.")
    settings = RunSettings.from_json(manifest.get("settings", manifest.get("params", {})))
    return ProjectData(picture, mask, sketch, box, settings, nodes, current, journal_path)


def _extract_journal(archive: zipfile.ZipFile) -> Path | None:
    if JOURNAL_MEMBER not in archive.namelist():
        return None
    handle, name = tempfile.mkstemp(suffix=".sqlite")
    with os.fdopen(handle, "wb") as file, archive.open(JOURNAL_MEMBER) as member:
        shutil.copyfileobj(member, file)
    return Path(name)


def _edit_box(value) -> EditBox | None:
    if value is None:
        return None
    if isinstance(value, list):  # format 1
        return EditBox(*(int(number) for number in value))
    return EditBox(**{key: int(value[key]) for key in ("x", "y", "width", "height")})


def _node_record(entry: dict) -> RunRecord | None:
    """Format 2 stores a run record; format 1 flat parameters, of which the settings are kept."""
    if entry.get("record") is not None:
        try:
            return decode(RunRecord, entry["record"], where="record ")
        except RecordError as error:
            raise ValueError(f"history node {entry.get('id')}: {error}") from None
    parameters = entry.get("parameters")
    if not parameters:
        return None
    return RunRecord(RunSettings.from_json(parameters).request, candidate=int(parameters.get("candidate", 0) or 0))


def _grey(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()
