"""Project files: one zip holding the picture, its layers, every history image and the settings.

Layout: project.json (format version, parameters, history tree, current node, edit box),
picture.png, mask.png, sketch.png, history/<id>.png.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from glide_studio.app.errors import ImageLoadError, ProjectError
from glide_studio.app.history import HistoryNode
from glide_studio.app.images import load_image_bytes
from glide_studio.app.params import GenerationParams
from glide_studio.pipelines.request import EditBox

PROJECT_SUFFIX = ".glidestudio"
PROJECT_FILTER = f"GLIDE Studio projects (*{PROJECT_SUFFIX})"
FORMAT_VERSION = 1


@dataclass
class ProjectData:
    picture: np.ndarray
    mask: np.ndarray
    sketch: np.ndarray
    edit_box: EditBox
    params: GenerationParams
    nodes: list[HistoryNode]
    current_node: int


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_project(path: str | Path, data: ProjectData) -> None:
    """Writes atomically (a temporary file renamed over the target), so a crash never leaves half a file."""
    path = Path(path)
    manifest = {
        "format": "glide-studio-project",
        "version": FORMAT_VERSION,
        "params": data.params.to_dict(),
        "edit_box": [data.edit_box.x, data.edit_box.y, data.edit_box.width, data.edit_box.height],
        "current_node": data.current_node,
        "nodes": [
            {
                "id": node.id,
                "parent": node.parent_id,
                "caption": node.caption,
                "parameters": node.parameters,
                "created": node.created,
            }
            for node in data.nodes
        ],
    }
    temporary = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("project.json", json.dumps(manifest, indent=1))
        archive.writestr("picture.png", _png_bytes(data.picture))
        archive.writestr("mask.png", _png_bytes(data.mask))
        archive.writestr("sketch.png", _png_bytes(data.sketch))
        for node in data.nodes:
            archive.writestr(f"history/{node.id}.png", _png_bytes(node.image))
    os.replace(temporary, path)


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
                    dict(entry.get("parameters", {})),
                    float(entry.get("created", 0.0)),
                )
                for entry in manifest["nodes"]
            ]
            box = EditBox(*(int(value) for value in manifest["edit_box"]))
            current = int(manifest["current_node"])
    except FileNotFoundError as error:
        raise ProjectError(f"{path} does not exist.") from error
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, ImageLoadError, OSError) as error:
        raise ProjectError(f"{path.name} is damaged or incomplete ({error}).") from error
    if mask.shape != picture.shape[:2] or sketch.shape[:2] != picture.shape[:2]:
        raise ProjectError(f"{path.name} is damaged: its layers do not match the picture's size.")
    if not nodes or current not in {node.id for node in nodes}:
        raise ProjectError(f"{path.name} is damaged: its history is empty or inconsistent.")
    return ProjectData(
        picture, mask, sketch, box, GenerationParams.from_dict(manifest.get("params", {})), nodes, current
    )


def _grey(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()
