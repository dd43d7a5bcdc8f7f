"""Executing one headless run: inputs from files, the request, models, the Step stream, PNGs out.

``glide_studio.cli`` parses the command line and calls `run_command`; this module never imports it back.
Everything heavy is imported inside the functions, so the parser answers ``--help`` quickly.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = "glide-{mode}-{seed}-{candidate}.png"
PATTERN_FIELDS = ("mode", "seed", "candidate", "prompt")


class CliError(Exception):
    """A command line that cannot be run as given."""


def output_paths(pattern: str | None, mode: str, seed: int, prompt: str, count: int) -> list[Path]:
    """One .png path per candidate from ``--output`` (a file, a directory or a pattern)."""
    pattern = pattern or DEFAULT_OUTPUT
    if Path(pattern).is_dir():
        pattern = str(Path(pattern) / DEFAULT_OUTPUT)
    if Path(pattern).suffix.lower() != ".png":
        raise CliError(f"--output must name .png files (the run is stored in PNG text), got {pattern!r}")
    if count > 1 and "{candidate}" not in pattern:
        path = Path(pattern)
        pattern = str(path.with_name(path.stem + "-{candidate}" + path.suffix))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:40] or "untitled"
    values: dict[str, Any] = {"mode": mode, "seed": seed, "prompt": slug}
    paths = []
    for candidate in range(count):
        try:
            name = pattern.format(**values, candidate=candidate)
        except (KeyError, IndexError, ValueError) as error:
            fields = ", ".join("{" + field + "}" for field in PATTERN_FIELDS)
            raise CliError(f"--output pattern {pattern!r} is not valid ({error}); use {fields}") from None
        paths.append(Path(name))
    if len(set(paths)) != len(paths):
        raise CliError(f"--output pattern {pattern!r} gives the same file name to several candidates")
    return paths


def _recorded_input(name: str, record, store) -> tuple[Any, Path | None]:
    """A recorded input: from its file when that still holds the same pixels, else from the input store."""
    from glide_studio.imageio import load_image, load_mask, load_sketch
    from glide_studio.png_metadata import InputMismatchError
    from glide_studio.runs.record import array_digest

    recorded = record.inputs[name]
    path = Path(recorded.path) if recorded.path else None
    changed = False
    if path is not None and path.is_file():
        loader = {"image": load_image, "mask": lambda p: load_mask(p, None), "sketch": load_sketch}[name]
        array = loader(path)
        if array_digest(array, name) == recorded.sha256:
            return array, path
        changed = True
    array = store.get(name, recorded.sha256)
    if array is not None:
        return array, path
    if changed:
        raise InputMismatchError(f"the input {name} differs from the one the recorded run used ({path}): "
                                 "its pixels changed, so the result would not be repeated")
    where = f"at {path} nor " if path is not None else ""
    raise CliError(f"the recorded run's {name} is neither {where}kept in {store.root}; pass --{name}")


def _load_inputs(args: argparse.Namespace, record) -> tuple[dict, dict]:
    """The pixel arrays (given on the command line, else recorded) and the file each came from."""
    from glide_studio.imageio import load_image, load_mask, load_sketch
    from glide_studio.runs.inputs import InputStore
    from glide_studio.runs.record import pixel_fields

    arrays: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    store = InputStore()
    for name in pixel_fields():
        given = getattr(args, name, None)
        if given is not None:
            paths[name] = given
        elif record is not None and name in record.inputs:
            arrays[name], path = _recorded_input(name, record, store)
            if path is not None:
                paths[name] = path
    if "image" not in arrays and "image" in paths:
        arrays["image"] = load_image(paths["image"])
    image = arrays.get("image")
    size = None if image is None else (image.shape[1], image.shape[0])
    if "mask" not in arrays and "mask" in paths:
        arrays["mask"] = load_mask(paths["mask"], size)
    if "sketch" not in arrays and "sketch" in paths:
        arrays["sketch"] = load_sketch(paths["sketch"])
    sketch = arrays.get("sketch")
    if sketch is not None and size is not None and (sketch.shape[1], sketch.shape[0]) != size:
        raise CliError(
            f"the sketch is {sketch.shape[1]}x{sketch.shape[0]} but the picture is {size[0]}x{size[1]}: "
            "it must be a layer of the same size"
        )
    return arrays, {name: str(Path(path).resolve()) for name, path in paths.items()}


def _check_mode_inputs(request) -> None:
    from glide_studio.runs.codec import specs

    for found in specs(type(request)):
        needed = found.is_pixels and request.mode.value in found.metadata["required"]
        if needed and getattr(request, found.name) is None:
            raise CliError(f"{request.mode.value} needs --{found.name}")


def _check_room(outputs: list[Path], request) -> None:
    from glide_studio.atomic_files import check_room

    height, width = request.image.shape[:2] if request.image is not None else (256, 256)
    needed = (width * height * 3 + 2**20) * len(outputs)  # a PNG is never much larger than its raw pixels
    for folder in sorted({path.parent for path in outputs}):
        try:
            check_room(folder, needed)
        except OSError as error:
            raise CliError(f"cannot write the results: {error.strerror or error}") from None


def resolve_device(name: str | None) -> str:
    if name and name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_context(args: argparse.Namespace, record) -> tuple[str, str]:
    """(device, precision) to run on: the command line's, else the recorded run's, which must be possible here:
    other hardware gives other pixels, so a repeat that cannot match says so instead of running."""
    from glide_studio.models.precision import cpu_supports_bf16
    from glide_studio.runs.errors import PrecisionUnavailableError

    context = record.context if record is not None else None
    device = resolve_device(args.device or (context.device if context else None))
    precision = args.precision or (context.precision if context and context.precision else "auto")
    if context is None or (args.device and args.precision):
        return device, precision
    import torch

    recorded = f"{context.device} in {context.precision or 'an unrecorded precision'}"
    if device.startswith("cuda") and not torch.cuda.is_available() and not args.device:
        raise PrecisionUnavailableError(
            f"the run used {recorded} and this machine has no CUDA device, so its pixels cannot be repeated "
            "here; pass --device cpu to run it anyway (the pixels will differ)")
    if device == "cpu" and precision == "bf16" and not cpu_supports_bf16() and not args.precision:
        raise PrecisionUnavailableError(
            f"the run used {recorded}, and this CPU has no native bf16 (AVX512-BF16 or AMX), so its pixels "
            "cannot be repeated here; pass --precision bf16 (emulated, slow) or fp32 to run it anyway "
            "(the pixels will differ)")
    return device, precision


def _progress(quiet: bool):
    """An on_step callback that draws one tqdm bar per stage, and the bar to close at the end."""
    from glide_studio.progress import ProgressBar

    state: dict[str, Any] = {"bar": None, "stage": None}

    def on_step(step) -> None:
        bar = state["bar"]
        if bar is None or bar.total != step.total:
            if bar is not None:
                bar.close()
            bar = state["bar"] = ProgressBar(total=step.total, unit="step", disable=quiet, file=sys.stderr)
        if step.stage != state["stage"]:
            state["stage"] = step.stage
            bar.set_description(step.stage)
        bar.update(max(step.index + 1 - bar.n, 0))

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return on_step, close


def run_command(args: argparse.Namespace) -> int:
    from glide_studio import png_metadata as metadata
    from glide_studio.pipelines.editbox import with_default_box
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs.codec import specs
    from glide_studio.runs.drain import drain
    from glide_studio.runs.models import load_model_set
    from glide_studio.runs.record import RunContext, RunRecord
    from glide_studio.runs.streams import run

    png = args.png if args.command == "repeat" else args.from_png
    record = metadata.read_record(png).record if png is not None else None
    fields = {found.name: getattr(args, found.name) for found in specs(Request)
              if not found.is_pixels and hasattr(args, found.name)}
    if args.command != "repeat":
        fields["mode"] = Mode(args.command)
    arrays, paths = _load_inputs(args, record)
    if record is not None:
        request = record.request.with_(**fields, **arrays)
        metadata.check_inputs(record, {name: arrays.get(name) for name in record.inputs
                                       if getattr(args, name, None) is None})
    else:
        request = with_default_box(Request(**fields, **arrays))
    request = request.without_unused_inputs()
    _check_mode_inputs(request)
    # A bad --output, an unwritable folder or a full disk is refused before minutes of sampling, not after.
    outputs = output_paths(args.output, request.mode.value, request.seed, request.prompt, request.batch)
    _check_room(outputs, request)

    device, precision = run_context(args, record)
    models = load_model_set(request, device, precision)
    on_step, close_bar = _progress(args.quiet)
    try:
        final = drain(run(models, request), on_step)
    finally:
        close_bar()
    if len(final) != len(outputs):
        raise CliError(f"the pipeline returned {len(final)} pictures for {len(outputs)} candidates")
    ran = RunRecord.of(request, RunContext.here(device, models.precision.name, getattr(models, "model_hash", "")), paths=paths)
    for candidate, (path, picture) in enumerate(zip(outputs, final, strict=True)):
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata.write_png(path, picture, ran.for_candidate(candidate))
        print(path)
    return 0
