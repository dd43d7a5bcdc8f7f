"""PNG files that carry the run that made them.

Two text chunks are written:
- ``parameters`` (tEXt, iTXt when the prompt is not Latin-1), the AUTOMATIC1111 convention that many
  tools display: ``prompt\\nSteps: 25, Sampler: dpm++2m, CFG scale: 3.0, Seed: 1, Size: 256x256, ...``
- ``glide_studio`` (compressed iTXt), JSON with every field of the ``Request`` except the pixel arrays,
  for which it records sha256 digests (and file paths when known), plus the candidate index and the
  app version. This is what makes a run repeatable.

``write_png(path, image, request, candidate=0, input_paths=None, extra=None)`` writes a file.
``read_parameters(path) -> dict`` reads them back: ``{"source": "glide_studio" | "a1111", "request":
{field: json value}, "inputs": {"image": {"sha256", "shape", "path"?}, ...}, "candidate", "app_version"}``;
foreign A1111 files are parsed as well as their text allows (``"raw"`` holds all their key/values).
``request_from_metadata(meta, image=..., mask=..., sketch=...)`` rebuilds the ``Request``, checking the
given arrays against the recorded digests (``InputMismatchError``) unless ``verify=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from glide_studio import __version__
from glide_studio.pipelines.request import EditBox, Mode, Request

METADATA_KEY = "glide_studio"
A1111_KEY = "parameters"
FORMAT_VERSION = 1
PIXEL_FIELDS = ("image", "mask", "sketch")


class MetadataError(ValueError):
    """A file holds no usable generation parameters."""


class InputMismatchError(MetadataError):
    """An input picture differs from the one the recorded run used."""


def array_digest(array: np.ndarray, kind: str = "image") -> str:
    """sha256 over shape and pixels; masks are hashed as booleans (any nonzero value means painted)."""
    if kind == "mask":
        array = np.asarray(array) != 0
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array.reshape(-1).view(np.uint8)))
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(key): _json_value(v) for key, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def request_fields(request: Request) -> dict[str, Any]:
    """Every non-pixel field of the request as JSON values."""
    return {
        f.name: _json_value(getattr(request, f.name))
        for f in dataclasses.fields(request)
        if f.name not in PIXEL_FIELDS
    }


def describe_inputs(request: Request, input_paths: dict[str, str | Path] | None = None) -> dict[str, dict]:
    inputs: dict[str, dict] = {}
    for name in PIXEL_FIELDS:
        array = getattr(request, name)
        if array is None:
            continue
        entry: dict[str, Any] = {"sha256": array_digest(array, name), "shape": list(array.shape)}
        if input_paths and input_paths.get(name):
            entry["path"] = str(Path(input_paths[name]).resolve())
        inputs[name] = entry
    return inputs


def _format_number(value: float) -> str:
    return f"{value:g}"


def a1111_text(request: Request, size: tuple[int, int], candidate: int = 0) -> str:
    """The ``parameters`` text; ``size`` is the written image's (width, height)."""
    pairs = [
        ("Steps", request.steps),
        ("Sampler", request.sampler),
        ("CFG scale", _format_number(request.guidance_scale)),
        ("Seed", request.seed),
        ("Size", f"{size[0]}x{size[1]}"),
        ("Model", request.base_model),
    ]
    if request.mode in (Mode.SDEDIT,):
        pairs.append(("Denoising strength", _format_number(request.strength)))
    if request.upsample_model:
        pairs += [("Hires upscaler", request.upsample_model), ("Hires steps", request.upsample_steps)]
    guidance = getattr(request, "guidance", None)
    if guidance is not None:
        pairs.append(("Guidance", _json_value(guidance)))
    if request.batch > 1:
        pairs += [("Batch size", request.batch), ("Batch pos", candidate)]
    if request.edit_box is not None:
        box = request.edit_box
        pairs.append(("Edit box", f'"{box.x},{box.y},{box.width},{box.height}"'))
    pairs += [("Mode", request.mode.value), ("Version", f"glide-studio {__version__}")]
    return request.prompt + "\n" + ", ".join(f"{key}: {value}" for key, value in pairs)


def build_metadata(
    request: Request,
    candidate: int = 0,
    input_paths: dict[str, str | Path] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON record; ``extra`` holds run facts outside the request (e.g. the device)."""
    meta = {
        "format": FORMAT_VERSION,
        "app_version": __version__,
        "request": request_fields(request),
        "inputs": describe_inputs(request, input_paths),
        "candidate": candidate,
    }
    if extra:
        meta["extra"] = {key: _json_value(value) for key, value in extra.items()}
    return meta


def png_info(
    request: Request,
    size: tuple[int, int],
    candidate: int = 0,
    input_paths: dict[str, str | Path] | None = None,
    extra: dict[str, Any] | None = None,
) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_KEY, a1111_text(request, size, candidate))
    meta = build_metadata(request, candidate, input_paths, extra)
    info.add_itxt(METADATA_KEY, json.dumps(meta, sort_keys=True), zip=True)
    return info


def write_png(
    path: str | Path,
    image: np.ndarray,
    request: Request,
    candidate: int = 0,
    input_paths: dict[str, str | Path] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an HxWx3 uint8 result with its parameters; returns the path."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MetadataError(f"expected an HxWx3 uint8 image to write, got {getattr(image, 'shape', image)}")
    path = Path(path)
    size = (image.shape[1], image.shape[0])
    info = png_info(request, size, candidate, input_paths, extra)
    Image.fromarray(image).save(path, format="PNG", pnginfo=info)
    return path


_A1111_PAIR = re.compile(r'\s*([\w ()/-]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_TO_FIELD = {
    "Steps": ("steps", int),
    "Sampler": ("sampler", str),
    "CFG scale": ("guidance_scale", float),
    "Seed": ("seed", int),
    "Model": ("base_model", str),
    "Denoising strength": ("strength", float),
    "Hires upscaler": ("upsample_model", str),
    "Hires steps": ("upsample_steps", int),
    "Batch size": ("batch", int),
    "Mode": ("mode", str),
    "Guidance": ("guidance", str),
}


def parse_a1111(text: str) -> dict[str, Any]:
    """Best-effort reading of an A1111 ``parameters`` text into our metadata shape."""
    lines = text.strip().split("\n")
    settings = ""
    if lines and _A1111_PAIR.match(lines[-1]) and "Steps:" in lines[-1]:
        settings = lines.pop()
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    raw: dict[str, str] = {}
    for key, value in _A1111_PAIR.findall(settings):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        raw[key.strip()] = value.strip()
    request: dict[str, Any] = {"prompt": "\n".join(prompt_lines)}
    for key, (name, kind) in _A1111_TO_FIELD.items():
        if key in raw:
            try:
                request[name] = kind(raw[key])
            except ValueError:
                continue
    box = raw.get("Edit box", "")
    if re.fullmatch(r"\s*-?\d+\s*,\s*-?\d+\s*,\s*\d+\s*,\s*\d+\s*", box):
        x, y, w, h = (int(part) for part in box.split(","))
        request["edit_box"] = {"x": x, "y": y, "width": w, "height": h}
    meta: dict[str, Any] = {"source": "a1111", "request": request, "inputs": {}, "raw": raw}
    if negative_lines:
        meta["negative_prompt"] = "\n".join(negative_lines)
    if "Batch pos" in raw and raw["Batch pos"].isdigit():
        meta["candidate"] = int(raw["Batch pos"])
    return meta


def read_parameters(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with Image.open(path) as picture:
            texts = dict(getattr(picture, "text", None) or picture.info)
    except FileNotFoundError:
        raise MetadataError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise MetadataError(f"{path}: not an image file") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MetadataError(f"{path}: cannot read its metadata ({error})") from error
    if METADATA_KEY in texts:
        try:
            meta = json.loads(texts[METADATA_KEY])
        except json.JSONDecodeError as error:
            raise MetadataError(f"{path}: the {METADATA_KEY} metadata is not valid JSON ({error})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("request"), dict):
            raise MetadataError(f"{path}: the {METADATA_KEY} metadata has no request")
        meta["source"] = METADATA_KEY
        return meta
    if isinstance(texts.get(A1111_KEY), str):
        return parse_a1111(texts[A1111_KEY])
    raise MetadataError(f"{path}: holds no generation parameters (no '{METADATA_KEY}' or 'parameters' text)")


def _field_value(name: str, value: Any, default: Any) -> Any:
    if name == "mode":
        try:
            return Mode(value)
        except ValueError:
            known = ", ".join(m.value for m in Mode)
            raise MetadataError(f"unknown mode {value!r} in the metadata (known: {known})") from None
    if name == "edit_box":
        if value is None:
            return None
        try:
            return EditBox(int(value["x"]), int(value["y"]), int(value["width"]), int(value["height"]))
        except (KeyError, TypeError, ValueError):
            raise MetadataError(f"the edit box in the metadata is malformed: {value!r}") from None
    if isinstance(default, Enum):
        return type(default)(value)
    if isinstance(default, bool) or value is None:
        return value
    if isinstance(default, (int, float)) and not isinstance(value, (int, float)):
        raise MetadataError(f"the metadata field {name!r} should be a number, got {value!r}")
    if isinstance(default, float):
        return float(value)
    return value


def request_from_metadata(
    meta: dict[str, Any],
    image: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    sketch: np.ndarray | None = None,
    verify: bool = True,
    **overrides: Any,
) -> Request:
    """The recorded request with the given pixel arrays; ``overrides`` replace recorded fields."""
    recorded = dict(meta.get("request") or {})
    fields = {f.name: f for f in dataclasses.fields(Request)}
    values: dict[str, Any] = {}
    for name, value in recorded.items():
        if name not in fields or name in PIXEL_FIELDS:
            continue  # a field from another version: ignored rather than refused
        field = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else None
        values[name] = _field_value(name, value, default)
    values.setdefault("mode", Mode.GENERATE)
    values.update(overrides)
    arrays = {"image": image, "mask": mask, "sketch": sketch}
    if verify:
        check_inputs(meta, arrays)
    return Request(**values, **arrays)


def check_inputs(meta: dict[str, Any], arrays: dict[str, np.ndarray | None]) -> None:
    """Raise ``InputMismatchError`` when a given array differs from the recorded one, or is missing."""
    inputs = meta.get("inputs") or {}
    for name, recorded in inputs.items():
        if name not in arrays or not isinstance(recorded, dict) or "sha256" not in recorded:
            continue
        where = f" ({recorded['path']})" if recorded.get("path") else ""
        array = arrays[name]
        if array is None:
            raise InputMismatchError(f"the recorded run used an input {name}{where}; it must be given")
        if array_digest(array, name) != recorded["sha256"]:
            raise InputMismatchError(
                f"the input {name} differs from the one the recorded run used{where}: "
                "its pixels changed, so the result would not be repeated"
            )
