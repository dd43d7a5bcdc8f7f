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
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from glide_studio import imageio
from glide_studio.app.errors import ImageLoadError, ProjectError
from glide_studio.app.history import HistoryNode
from glide_studio.app.images import MAX_SIDE, load_image_bytes
from glide_studio.app.journal import Journal
from glide_studio.app.run_settings import RunSettings
from glide_studio.atomic_files import write_atomically
from glide_studio.pipelines.request import EditBox
from glide_studio.runs.codec import RecordError, encode
from glide_studio.runs.record import RunRecord, decode_record

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
    """A project file, checked before anything is extracted or decoded (see `_check_archive`): a project is
    untrusted input, so a crafted one gets a ProjectError naming what is wrong, never a crash or a full disk."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, path.name)
            manifest = _read_manifest(archive, path.name)
            if manifest.get("format") != "glide-studio-project":
                raise ProjectError(f"{path.name} is not a GLIDE Studio project.")
            if int(manifest.get("version", 0)) > FORMAT_VERSION:
                raise ProjectError(
                    f"{path.name} was saved by a newer GLIDE Studio (format "
                    f"{manifest['version']}); please update."
                )
            _check_pictures(archive, path.name, [entry["id"] for entry in manifest["nodes"]])
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
            journal_path = _extract_journal(archive, path.name)
    except FileNotFoundError as error:
        raise ProjectError(f"{path} does not exist.") from error
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, ImageLoadError, OSError, EOFError,
            NotImplementedError, RuntimeError, zlib.error) as error:
        raise ProjectError(f"{path.name} is damaged or incomplete ({error}).") from error
    if mask.shape != picture.shape[:2] or sketch.shape[:2] != picture.shape[:2]:
        raise ProjectError(f"{path.name} is damaged: its layers do not match the picture's size.")
    if not nodes or current not in {node.id for node in nodes}:
        raise ProjectError(f"{path.name} is damaged: its history is empty or inconsistent.")
    settings = RunSettings.from_json(manifest.get("settings", manifest.get("params", {})))
    return ProjectData(picture, mask, sketch, box, settings, nodes, current, journal_path)


# --- What a project may hold, checked before anything is decoded -------------------------------------------
MAX_MEMBERS = 20_000
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 32
"""A project.json nests 5 levels today (nodes, a record, its request, a box); 32 leaves room for later formats."""
MAX_PICTURE_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_PIXELS = 600_000_000
"""All the pictures of one project together (picture, layers, history): about 2 GB of pixels in memory."""
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_archive(archive: zipfile.ZipFile, name: str) -> None:
    """Encryption, compression and declared sizes of every entry (zipfile never inflates past a declared size)."""
    entries = archive.infolist()
    if len(entries) > MAX_MEMBERS:
        raise ProjectError(f"{name} holds {len(entries):,} entries; a project has at most {MAX_MEMBERS:,}.")
    encrypted = [entry.filename for entry in entries if entry.flag_bits & 0x1]
    if encrypted:
        raise ProjectError(f"{name} has password-protected (encrypted) entries ({', '.join(encrypted[:3])}); "
                           "GLIDE Studio writes projects without encryption and cannot open these.")
    for entry in entries:
        if entry.compress_type not in _COMPRESSIONS:
            raise ProjectError(
                f"{name}: the entry {entry.filename} uses zip compression method {entry.compress_type}, which "
                f"GLIDE Studio does not read (only {' and '.join(_COMPRESSIONS.values())}); re-save the project.")
        if entry.filename == JOURNAL_MEMBER:
            folder = tempfile.gettempdir()
            free = shutil.disk_usage(folder).free
            if entry.file_size + _JOURNAL_DISK_MARGIN > free:
                raise ProjectError(
                    f"{name}: its journal unpacks to {entry.file_size / 1e6:,.0f} MB, but only {free / 1e6:,.0f} MB "
                    f"are free in {folder}; free some space and open it again.")
            continue
        limit = MAX_MANIFEST_BYTES if entry.filename == "project.json" else MAX_PICTURE_MEMBER_BYTES
        if entry.file_size > limit:
            raise ProjectError(f"{name}: the entry {entry.filename} unpacks to {entry.file_size / 1e6:,.0f} MB, "
                               f"more than the {limit / 1e6:,.0f} MB a project's {entry.filename} may hold.")


_JOURNAL_DISK_MARGIN = 256 * 1024 * 1024


def _read_manifest(archive: zipfile.ZipFile, name: str) -> dict:
    try:
        manifest = json.loads(archive.read("project.json"))
    except RecursionError:
        manifest = None
    except UnicodeDecodeError as error:
        raise ProjectError(f"{name}: project.json is not UTF-8 text ({error}).") from None
    if manifest is None or _nesting(manifest) > MAX_JSON_DEPTH:
        raise ProjectError(f"{name}: project.json is nested more than {MAX_JSON_DEPTH} levels deep; it was not "
                           "written by GLIDE Studio.")
    if not isinstance(manifest, dict):
        raise ProjectError(f"{name}: project.json holds no JSON object.")
    return manifest


def _nesting(value) -> int:
    """How deep lists and objects nest in parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _check_pictures(archive: zipfile.ZipFile, name: str, node_ids: list) -> None:
    """Every picture's size from its PNG header, before any is decoded: the layers must match the picture, no
    picture may pass the image limit, and all together must fit in memory."""
    limit = imageio.max_pixels()
    sizes = {}
    for member in ["picture.png", "mask.png", "sketch.png", *(f"history/{node}.png" for node in node_ids)]:
        width, height = sizes[member] = _png_size(archive, member, name)
        if width * height > limit or max(width, height) > MAX_SIDE:
            raise ProjectError(f"{name}: {member} is {width}x{height} pixels, larger than a picture may be "
                               f"({limit / 1e6:.0f} megapixels, {MAX_SIDE} px a side); it was not opened.")
    for layer in ("mask.png", "sketch.png"):
        if sizes[layer] != sizes["picture.png"]:
            raise ProjectError(f"{name} is damaged: {layer} is {sizes[layer][0]}x{sizes[layer][1]} but the picture "
                               f"is {sizes['picture.png'][0]}x{sizes['picture.png'][1]}.")
    total = sum(width * height for width, height in sizes.values())
    if total > MAX_TOTAL_PIXELS:
        raise ProjectError(f"{name}: its {len(sizes)} pictures hold {total / 1e6:,.0f} megapixels in all, more than "
                           f"the {MAX_TOTAL_PIXELS / 1e6:,.0f} a project may hold in memory.")


def _png_size(archive: zipfile.ZipFile, member: str, name: str) -> tuple[int, int]:
    with archive.open(member) as handle:
        head = handle.read(24)
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ProjectError(f"{name} is damaged: {member} is not a PNG picture.")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _extract_journal(archive: zipfile.ZipFile, project_name: str) -> Path | None:
    if JOURNAL_MEMBER not in archive.namelist():
        return None
    handle, name = tempfile.mkstemp(suffix=".sqlite")
    try:
        with os.fdopen(handle, "wb") as file, archive.open(JOURNAL_MEMBER) as member:
            shutil.copyfileobj(member, file)
    except BaseException:
        Path(name).unlink(missing_ok=True)  # a full disk or a damaged entry leaves no temporary behind
        raise
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
            return decode_record(entry["record"], where="record ")
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
