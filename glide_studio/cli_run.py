"""Executing one headless run: inputs from files, the request, models, the Step stream, PNGs out.

Split from ``glide_studio.cli`` (which parses the command line); everything heavy is imported here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from glide_studio.cli import CliError, output_paths

_OPTION_FIELDS = {
    "prompt": "prompt",
    "steps": "steps",
    "upsample_steps": "upsample_steps",
    "sampler": "sampler",
    "guidance_scale": "guidance_scale",
    "guidance": "guidance",
    "strength": "strength",
    "seed": "seed",
    "candidates": "batch",
    "model": "base_model",
    "upsample_model": "upsample_model",
    "box": "edit_box",
    "eta": "eta",
}
def _explicit_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Request fields the user gave on the command line, converted to the field's type."""
    import dataclasses
    from enum import Enum

    from glide_studio.pipelines.request import Request

    defaults = {f.name: f.default for f in dataclasses.fields(Request)}
    fields: dict[str, Any] = {}
    for option, name in _OPTION_FIELDS.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        if name not in defaults:
            if option == "guidance" and value == "cfg":
                continue  # classifier-free guidance is what this build always does
            raise CliError(f"--{option.replace('_', '-')} {value} is not supported by this build")
        if option == "upsample_model" and value.lower() == "none":
            value = None
        if isinstance(defaults[name], Enum):
            value = type(defaults[name])(value)
        fields[name] = value
    return fields


def _load_inputs(args: argparse.Namespace, meta: dict | None) -> tuple[dict, dict, set[str]]:
    """The pixel arrays, the file each came from, and which of them the recorded run named."""
    from glide_studio.imageio import load_image, load_mask, load_sketch

    recorded = (meta or {}).get("inputs") or {}
    paths: dict[str, Path] = {}
    from_record: set[str] = set()
    for name in ("image", "mask", "sketch"):
        given = getattr(args, name, None)
        if given is not None:
            paths[name] = given
        elif isinstance(recorded.get(name), dict):
            path = recorded[name].get("path")
            if not path:
                raise CliError(f"the recorded run used an input {name} but not its file name; pass --{name}")
            if not Path(path).is_file():
                raise CliError(f"the recorded run's {name} {path} no longer exists; pass --{name}")
            paths[name] = Path(path)
            from_record.add(name)
    image = load_image(paths["image"]) if "image" in paths else None
    size = None if image is None else (image.shape[1], image.shape[0])
    mask = load_mask(paths["mask"], size) if "mask" in paths else None
    sketch = load_sketch(paths["sketch"]) if "sketch" in paths else None
    if sketch is not None and size is not None and (sketch.shape[1], sketch.shape[0]) != size:
        raise CliError(
            f"the sketch is {sketch.shape[1]}x{sketch.shape[0]} but the picture is {size[0]}x{size[1]}: "
            "it must be a layer of the same size"
        )
    return {"image": image, "mask": mask, "sketch": sketch}, paths, from_record


_REQUIRED_INPUTS = {"inpaint": ("image", "mask"), "sdedit": ("image", "sketch"), "upsample": ("image",)}


def _check_mode_inputs(request) -> None:
    for name in _REQUIRED_INPUTS.get(request.mode.value, ()):
        if getattr(request, name) is None:
            raise CliError(f"{request.mode.value} needs --{name}")


def _with_default_box(request):
    """Inpaint and SDEdit on a big picture: a box around the painted region, as the editor would place."""
    from glide_studio.pipelines.editbox import default_box

    if request.edit_box is not None or request.image is None:
        return request
    if request.mode.value not in ("inpaint", "sdedit"):
        return request
    painted = request.mask
    if painted is None and request.sketch is not None:
        painted = request.sketch[..., 3] > 0
    if painted is None:
        return request
    height, width = request.image.shape[:2]
    model_size = 256 if request.upsample_model else 64
    return request.with_(edit_box=default_box((width, height), painted, model_size=model_size))


def resolve_device(name: str | None) -> str:
    if name and name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _recorded_device(meta: dict | None) -> str | None:
    """The device a repeated run used, when this machine has it (pixels can differ across devices)."""
    recorded = ((meta or {}).get("extra") or {}).get("device")
    if not isinstance(recorded, str) or recorded == "cpu":
        return recorded
    import torch

    if recorded.startswith("cuda") and torch.cuda.is_available():
        return recorded
    print(f"glide-studio: the run used {recorded}; running on cpu (pixels may differ)", file=sys.stderr)
    return "cpu"


def load_model_set(request, device: str, precision: str = "auto"):
    """The networks the request needs (base, upsampler, CLIP encoders for CLIP guidance), loaded once."""
    from glide_studio.pipelines.models import ModelSet

    needs_base = request.mode.value != "upsample"
    base = _network(request.base_model, device) if needs_base else None
    upsample = _network(request.upsample_model, device) if request.upsample_model else None
    clip_image = clip_text = None
    if request.guidance == "clip":
        clip_image, clip_text = _network("clip-image-enc", device), _network("clip-text-enc", device)
    from glide_studio.models import choose_precision

    return ModelSet.prepared(choose_precision(device, precision), base, upsample, clip_image, clip_text)


def _network(name: str, device: str):
    from glide_studio import checkpoints

    try:
        return checkpoints.load_network(name, device)
    except checkpoints.OfflineError:
        raise CliError(f"the checkpoint {name!r} is not downloaded: glide-studio download {name}") from None


def pipeline_steps(models, request):
    """The Step stream for the request's mode."""
    from glide_studio import pipelines

    return pipelines.run(models, request)


def drain_with_progress(steps, quiet: bool = False):
    """Run the pipeline to the end under one tqdm bar named after the current stage; returns the final
    N x H x W x 3 uint8 results."""
    from .progress import ProgressBar as StepBar

    final, bar, stage = None, None, None
    try:
        for step in steps:
            if bar is None or bar.total != step.total:
                if bar is not None:
                    bar.close()
                bar = StepBar(total=step.total, unit="step", disable=quiet, file=sys.stderr)
            if step.stage != stage:
                stage = step.stage
                bar.set_description(stage)
            bar.update(max(step.index + 1 - bar.n, 0))
            if step.final is not None:
                final = step.final
    finally:
        if bar is not None:
            bar.close()
    if final is None:
        raise CliError("the pipeline finished without producing an image")
    return final


def run_command(args: argparse.Namespace) -> int:
    from glide_studio import png_metadata as metadata
    from glide_studio.pipelines.request import Mode, Request

    png = args.png if args.command == "repeat" else args.from_png
    meta = metadata.read_parameters(png) if png is not None else None
    fields = _explicit_fields(args)
    if args.command != "repeat":
        fields["mode"] = Mode(args.command)
    arrays, paths, from_record = _load_inputs(args, meta)
    if meta is not None:
        request = metadata.request_from_metadata(meta, verify=False, **arrays, **fields)
        metadata.check_inputs(meta, {name: arrays[name] for name in from_record})
    else:
        request = _with_default_box(Request(**fields, **arrays))
    _check_mode_inputs(request)
    # A bad --output is refused before minutes of sampling, not after.
    outputs = output_paths(args.output, request.mode.value, request.seed, request.prompt, request.batch)

    device = resolve_device(args.device or _recorded_device(meta))
    models = load_model_set(request, device, args.precision)
    final = drain_with_progress(pipeline_steps(models, request), quiet=args.quiet)
    if len(final) != len(outputs):
        raise CliError(f"the pipeline returned {len(final)} pictures for {len(outputs)} candidates")
    for candidate, (path, picture) in enumerate(zip(outputs, final, strict=True)):
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata.write_png(path, picture, request, candidate, paths, extra={"device": device})
        print(path)
    return 0
