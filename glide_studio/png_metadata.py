"""PNG files that carry the run that made them.

Two text chunks are written:
- ``parameters`` (tEXt, iTXt when the prompt is not Latin-1), the AUTOMATIC1111 convention that many
  tools display: ``prompt\\nSteps: 25, Sampler: dpm++2m, CFG scale: 3, Seed: 1, Size: 256x256, ...``. Its
  keys are the request fields' ``a1111`` names.
- ``glide_studio`` (compressed iTXt), the run record as JSON: every field of the request except the pixel
  arrays, which it records by digest (and file path when known), the context (device, precision,
  versions) and the candidate index. This is what makes a run repeatable.

Both are written and read through the generic record codec, never field by field.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from glide_studio import __version__
from glide_studio.atomic_files import write_atomically
from glide_studio.diffusion.samplers import Sampler
from glide_studio.pipelines.request import MAX_SEED, Mode, Request
from glide_studio.runs.codec import RecordError, encode, format_text, parse_text, specs
from glide_studio.runs.record import RunContext, RunRecord, array_digest, decode_record

METADATA_KEY = "glide_studio"
A1111_KEY = "parameters"
FORMAT_VERSION = 3
"""1: the request with the device under "extra"; 2: the run record (request, context, inputs, candidate); 3: the
same, for runs whose candidate i draws its noise from seed + i (before, a batch drew from one generator)."""


class MetadataError(ValueError):
    """A file holds no usable generation parameters."""


class InputMismatchError(MetadataError):
    """An input picture differs from the one the recorded run used."""


@dataclass(frozen=True)
class PngRecord:
    """What a PNG says about the run that made it. ``source`` is "glide_studio" (our record) or "a1111"
    (another tool's text, read as well as it allows; ``raw`` holds all its key/values)."""

    record: RunRecord
    source: str
    app_version: str | None = None
    raw: dict[str, str] = field(default_factory=dict)
    negative_prompt: str = ""
    shared_noise: bool = False
    """A batch of several written before format 3: its candidates drew from one generator, as no run does now, so
    running it again gives other pixels."""


# -- the A1111 text ----------------------------------------------------------------------------------

A1111_NAMES: dict[Enum, str] = {
    Sampler.DPMPP_2M_SDE: "DPM++ 2M SDE",
    Sampler.DPMPP_2M: "DPM++ 2M",
    Sampler.DDIM: "DDIM",
    Sampler.ANCESTRAL: "DDPM",  # GLIDE's ancestral sampler is DDPM's (A1111 1.8's "DDPM")
}
"""Enum values under the names A1111 users know; ours stay in the JSON record."""


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"' if ("," in text or ":" in text) else text


def _a1111_value(value: Any) -> str:
    name = A1111_NAMES.get(value) if isinstance(value, Enum) else None
    return name or format_text(value)


def _from_a1111_value(kind: Any, text: str) -> str:
    """Our value for an A1111 name of an enum member (any case), else the text as it is."""
    if isinstance(kind, type) and issubclass(kind, Enum):
        for member, name in A1111_NAMES.items():
            if isinstance(member, kind) and name.lower() == text.strip().lower():
                return str(member.value)
    return text


def a1111_text(record: RunRecord, size: tuple[int, int]) -> str:
    """The ``parameters`` text; ``size`` is the written image's (width, height). As in A1111, its Seed is the
    picture's own: candidate i's seed, from which that candidate alone is drawn again."""
    request = record.request.with_(seed=record.request.candidate_seed(record.candidate))
    pairs = []
    for found in specs(Request):
        key = found.metadata.get("a1111")
        value = getattr(request, found.name)
        if key and value is not None and found.relevant(request):
            pairs.append((key, _quoted(_a1111_value(value))))
    pairs.append(("Size", f"{size[0]}x{size[1]}"))
    if record.context.model_hash:
        pairs.append(("Model hash", record.context.model_hash))
    if request.batch > 1:
        pairs.append(("Batch pos", record.candidate))
    pairs.append(("Version", f"glide-studio {__version__}"))
    negative = f"\nNegative prompt: {request.negative_prompt}" if request.negative_prompt else ""
    return request.prompt + negative + "\n" + ", ".join(f"{key}: {value}" for key, value in pairs)


def _settings_pairs(settings: str) -> dict[str, str]:
    """`Key: value, Key: "quoted, value", ...` read in one pass (a regular expression that backtracks took
    minutes on a megabyte of text)."""
    pairs: dict[str, str] = {}
    position, length = 0, len(settings)
    while position < length:
        colon = settings.find(":", position)
        if colon < 0:
            break
        key = settings[position:colon].rsplit(",", 1)[-1].strip()  # text before it with no colon is no pair
        position = colon + 1
        while position < length and settings[position] == " ":
            position += 1
        if position < length and settings[position] == '"':
            end, value = position + 1, []
            while end < length and settings[end] != '"':
                if settings[end] == "\\" and end + 1 < length:
                    end += 1
                value.append(settings[end])
                end += 1
            text, position = "".join(value), settings.find(",", end)
        else:
            end = settings.find(",", position)
            text, position = settings[position: end if end >= 0 else length], end
        if key:
            pairs[key] = text.strip()
        if position < 0:
            break
        position += 1
    return pairs


def _one_field_per_key(request: Request, values: dict[str, Any]) -> Request:
    """Where several fields share one A1111 key (each family's sampler is "Sampler"), the value belongs to the
    one that matters for this request; the others keep their defaults."""
    keys = Counter(found.metadata.get("a1111") for found in specs(Request))
    dropped = {found.name for found in specs(Request)
               if found.name in values and keys[found.metadata.get("a1111")] > 1 and not found.relevant(request)}
    if not dropped:
        return request
    return Request(**{name: value for name, value in values.items() if name not in dropped})


def parse_a1111(text: str) -> PngRecord:
    """Best-effort reading of an A1111 ``parameters`` text: values our fields cannot hold are left out."""
    lines = text.strip().split("\n")
    settings = ""
    if lines and "Steps:" in lines[-1]:
        settings = lines.pop()
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    raw = _settings_pairs(settings)
    values: dict[str, Any] = {"mode": Mode.GENERATE, "prompt": "\n".join(prompt_lines),
                              "negative_prompt": "\n".join(negative_lines)}
    for found in specs(Request):
        key = found.metadata.get("a1111")
        if key in raw:
            try:
                values[found.name] = parse_text(found, _from_a1111_value(found.kind, raw[key]))
            except (RecordError, ValueError):
                continue
    position = raw.get("Batch pos", "")
    candidate = int(position) if position.isdigit() else 0
    if not 0 <= candidate < values.get("batch", 1):
        candidate = 0
    if "seed" in values:  # the picture's own seed: the batch started `candidate` seeds before it
        values["seed"] = (values["seed"] - candidate) % (MAX_SEED + 1)
    try:
        request = _one_field_per_key(Request(**values), values)
    except ValueError:
        request = Request(mode=values["mode"], prompt=values["prompt"])
    return PngRecord(RunRecord(request, candidate=candidate), "a1111", raw=raw,
                     negative_prompt="\n".join(negative_lines))


# -- writing and reading ------------------------------------------------------------------------------

def shareable(record: RunRecord) -> RunRecord:
    """The record as a file others may see holds it: input files by name only, no folder of this machine."""
    inputs = {name: dataclasses.replace(digest, path=Path(digest.path).name if digest.path else None)
              for name, digest in record.inputs.items()}
    return dataclasses.replace(record, inputs=inputs)


def record_json(record: RunRecord) -> str:
    return json.dumps({"format": FORMAT_VERSION, "app_version": __version__, **encode(record)}, sort_keys=True)


def check_writable(record: RunRecord) -> None:
    """Raise MetadataError now, before a run, if its record could not be written into a PNG afterwards (a
    prompt holding bytes that are not UTF-8 text, as a shell hands over from a file in another encoding)."""
    for found in specs(Request):
        value = getattr(record.request, found.name)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raw = value.encode("utf-8", "surrogateescape")[error.start:error.start + 1]
                byte = f" (byte 0x{raw[0]:02x})" if raw else ""
                raise MetadataError(f"the {found.name} is not valid UTF-8 text{byte} at character {error.start}: "
                                    "give it as UTF-8") from None


def write_png(path: str | Path, image: np.ndarray, record: RunRecord | None) -> Path:
    """Write an HxWx3 uint8 result with its run record (None: a plain picture), atomically: a crash leaves the
    old file or none, never half of one."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MetadataError(f"expected an HxWx3 uint8 image to write, got {getattr(image, 'shape', image)}")
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    if record is not None:
        check_writable(record)
        record = shareable(record)
        info.add_text(A1111_KEY, a1111_text(record, (image.shape[1], image.shape[0])))
        info.add_itxt(METADATA_KEY, record_json(record), zip=True)
    return write_atomically(path, lambda file: Image.fromarray(image).save(file, format="PNG", pnginfo=info))


def record_from_json(meta: Any) -> PngRecord:
    """Our JSON record, of this format or the first one."""
    if not isinstance(meta, dict) or not isinstance(meta.get("request"), dict):
        raise MetadataError(f"the {METADATA_KEY} metadata has no request")
    meta = dict(meta)
    if "context" not in meta:  # format 1
        device = (meta.get("extra") or {}).get("device")
        meta["context"] = {"device": device} if isinstance(device, str) else {}
    meta["request"] = {"mode": Mode.GENERATE.value, **meta["request"]}
    try:
        record = decode_record(meta, where="the metadata field ")
    except RecordError as error:
        raise MetadataError(str(error)) from None
    written = meta.get("format")
    older = isinstance(written, int) and not isinstance(written, bool) and written < 3 or "format" not in meta
    return PngRecord(record, METADATA_KEY, str(meta.get("app_version") or "") or None,
                     shared_noise=older and record.request.batch > 1)


def read_record(path: str | Path) -> PngRecord:
    path = Path(path)
    try:
        with Image.open(path) as picture:
            texts = dict(getattr(picture, "text", None) or picture.info)
    except FileNotFoundError:
        raise MetadataError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise MetadataError(f"{path}: not an image file") from None
    except Image.DecompressionBombError as error:
        raise MetadataError(f"{path}: refused as a likely decompression bomb ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MetadataError(f"{path}: cannot read its metadata ({error})") from error
    if METADATA_KEY in texts:
        try:
            meta = json.loads(texts[METADATA_KEY])
        except (json.JSONDecodeError, RecursionError) as error:
            raise MetadataError(f"{path}: the {METADATA_KEY} metadata is not valid JSON ({error})") from None
        try:
            return record_from_json(meta)
        except MetadataError as error:
            raise MetadataError(f"{path}: {error}") from None
    if isinstance(texts.get(A1111_KEY), str):
        return parse_a1111(texts[A1111_KEY])
    raise MetadataError(f"{path}: holds no generation parameters (no '{METADATA_KEY}' or 'parameters' text)")


def check_inputs(record: RunRecord, arrays: dict[str, np.ndarray | None]) -> None:
    """Raise ``InputMismatchError`` when a given array differs from the recorded one, or is missing."""
    for name, recorded in record.inputs.items():
        if name not in arrays:
            continue
        where = f" ({recorded.path})" if recorded.path else ""
        array = arrays[name]
        if array is None:
            raise InputMismatchError(f"the recorded run used an input {name}{where}; it must be given")
        if array_digest(array, name) != recorded.sha256:
            raise InputMismatchError(
                f"the input {name} differs from the one the recorded run used{where}: "
                "its pixels changed, so the result would not be repeated"
            )


__all__ = ["InputMismatchError", "MetadataError", "PngRecord", "RunContext", "RunRecord", "a1111_text",
           "check_inputs", "check_writable", "parse_a1111", "read_record", "record_from_json", "record_json",
           "shareable", "write_png"]
