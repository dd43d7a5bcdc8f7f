"""The ``glide-studio`` command: the GUI with no subcommand, headless runs with one.

    glide-studio                          open the editor
    glide-studio inpaint --image p.png --mask m.png --prompt "a red circle" --output out.png
    glide-studio generate --prompt "a blue square" --candidates 4 --output "runs/{seed}-{candidate}.png"
    glide-studio repeat result.png        run again what a result PNG records (same pixels)
    glide-studio download / models        checkpoints (when the checkpoints layer provides them)

Heavy modules (torch, the pipelines, Qt) are imported only when a command needs them, so ``--help``
and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Any

from glide_studio import __version__

MODES = ("generate", "inpaint", "sdedit", "upsample")
DEFAULT_OUTPUT = "glide-{mode}-{seed}-{candidate}.png"
PATTERN_FIELDS = ("mode", "seed", "candidate", "prompt")


class CliError(Exception):
    """A command line that cannot be run as given."""


def parse_box(text: str):
    from glide_studio.pipelines.request import EditBox

    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4 or not all(re.fullmatch(r"-?\d+", part) for part in parts):
        raise argparse.ArgumentTypeError(f"expected x,y,width,height as four integers, got {text!r}")
    x, y, width, height = (int(part) for part in parts)
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"the box width and height must be positive, got {width}x{height}")
    return EditBox(x, y, width, height)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value


def _add_run_options(parser: argparse.ArgumentParser, from_png: bool = True) -> None:
    # Every default is None so that an option not given falls back to the PNG being repeated, then to
    # the Request's own default.
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--image", type=Path, help="the picture to edit (any size)")
    inputs.add_argument("--mask", type=Path, help="mask image: white or opaque = regenerate")
    inputs.add_argument("--sketch", type=Path, help="RGBA sketch layer (SDEdit): alpha marks strokes")
    inputs.add_argument("--box", type=parse_box, help="edit box x,y,width,height in picture pixels")
    if from_png:
        inputs.add_argument("--from-png", type=Path, help="repeat the run recorded in this PNG's metadata")
    run = parser.add_argument_group("sampling")
    run.add_argument("--prompt", help="the caption")
    run.add_argument("--steps", type=_positive_int, help="base model steps")
    run.add_argument("--upsample-steps", type=_positive_int, help="upsampler steps")
    run.add_argument("--sampler", help="sampler name, e.g. dpm++2m, ddim, ddpm, euler")
    run.add_argument("--guidance-scale", type=float, help="guidance strength (3 is GLIDE's usual)")
    run.add_argument("--guidance", choices=("cfg", "clip"), help="classifier-free (cfg) or CLIP guidance")
    run.add_argument("--strength", type=float, help="SDEdit noise strength in (0, 1]")
    run.add_argument("--seed", type=int, help="random seed")
    run.add_argument("--candidates", type=_positive_int, help="how many results to draw")
    models = parser.add_argument_group("models and output")
    models.add_argument("--model", help="base model name")
    models.add_argument("--upsample-model", help="upsampler model name, or 'none' to stop at 64 px")
    models.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    models.add_argument(
        "--output",
        "-o",
        help=f"output file, or a pattern with {{mode}} {{seed}} {{candidate}} {{prompt}} "
        f"(default {DEFAULT_OUTPUT}); a directory gets the default name",
    )
    models.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glide-studio",
        description="Text-guided image editing with GLIDE. Without a command, opens the editor: "
        "glide-studio [FILE] [--fake-engine] [--weights-dir DIR].",
    )
    parser.add_argument("--version", action="version", version=f"glide-studio {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {
        "generate": "text to image",
        "inpaint": "regenerate the masked region of a picture",
        "sdedit": "turn a rough colour sketch into an image (inside the mask)",
        "upsample": "64 px -> 256 px with the GLIDE upsampler",
    }
    for mode in MODES:
        sub = subparsers.add_parser(mode, help=helps[mode], description=helps[mode])
        _add_run_options(sub)
        sub.set_defaults(func=run_command)
    repeat = subparsers.add_parser(
        "repeat",
        help="run again what a result PNG records",
        description="Run again what a result PNG records (all its candidates); options override fields.",
    )
    repeat.add_argument("png", type=Path, help="a PNG written by glide-studio")
    _add_run_options(repeat, from_png=False)
    repeat.set_defaults(func=run_command)
    _register_checkpoint_commands(subparsers)
    return parser


def _register_checkpoint_commands(subparsers) -> None:
    try:
        commands = importlib.import_module("glide_studio.checkpoints.cli_commands")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("glide_studio"):
            return  # the checkpoints layer has no commands yet
        raise
    commands.register(subparsers)


def launch_gui(argv: list[str]) -> int:
    try:
        main_window = importlib.import_module("glide_studio.ui.main_window")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("PySide6"):
            print("glide-studio: the editor needs PySide6 (pip install PySide6-Essentials).", file=sys.stderr)
        else:
            print(
                f"glide-studio: the editor is not available in this build ({error}).\n"
                "Headless commands still work: glide-studio --help",
                file=sys.stderr,
            )
        return 1
    status = main_window.run_app(argv)
    return int(status or 0)


def _is_gui_command_line(argv: list[str], parser: argparse.ArgumentParser) -> bool:
    """No command, or the editor's own arguments (a file to open, --fake-engine, ...)."""
    if not argv:
        return True
    first = argv[0]
    if first in ("-h", "--help", "--version"):
        return False
    commands = next(
        (action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)), {}
    )
    return first not in commands


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        # Answered before building the parser, whose checkpoint commands import torch.
        print(f"glide-studio {__version__}")
        return 0
    parser = build_parser()
    if _is_gui_command_line(argv, parser):
        return launch_gui(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"the command {args.command!r} cannot be run")
    try:
        status = func(args)
    except KeyboardInterrupt:
        print("glide-studio: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        # Our own error types carry a message written for the user; anything else is a bug and keeps
        # its traceback.
        if not _is_user_error(error):
            raise
        print(f"glide-studio: error: {error}", file=sys.stderr)
        return 2
    return int(status or 0)


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, (CliError, FileNotFoundError, PermissionError, IsADirectoryError)):
        return True
    return type(error).__module__.startswith("glide_studio.")


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
}
_MODEL_SET_LOADERS = ("glide_studio.pipelines.models", "glide_studio.checkpoints")


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


def load_model_set(request, device: str):
    """The networks the request needs, from whichever layer provides ``load_model_set``."""
    for module_name in _MODEL_SET_LOADERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        loader = getattr(module, "load_model_set", None)
        if loader is not None:
            return loader(base=request.base_model, upsample=request.upsample_model, device=device)
    raise CliError("model loading is not available in this build (no load_model_set in the pipelines)")


def pipeline_steps(models, request):
    """The Step stream for the request's mode."""
    pipelines = importlib.import_module("glide_studio.pipelines")
    dispatcher = getattr(pipelines, "run", None)
    if callable(dispatcher):
        return dispatcher(models, request)
    module_name = f"glide_studio.pipelines.{request.mode.value}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise CliError(f"the {request.mode.value} pipeline is not available in this build") from None
    return module.run(models, request)


def drain_with_progress(steps, quiet: bool = False):
    """Run the pipeline to the end with a tqdm bar per stage; the final N x H x W x 3 uint8 results."""
    from tqdm import tqdm

    class StepBar(tqdm):
        monitor_interval = 0  # no monitor thread left behind by a one-shot command

    final, bar, stage = None, None, None
    try:
        for step in steps:
            if (step.stage, step.total) != stage:
                if bar is not None:
                    bar.close()
                stage = (step.stage, step.total)
                bar = StepBar(total=step.total, desc=step.stage, unit="step", disable=quiet, file=sys.stderr)
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
    from glide_studio.pipelines import metadata
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

    device = resolve_device(args.device or _recorded_device(meta))
    models = load_model_set(request, device)
    final = drain_with_progress(pipeline_steps(models, request), quiet=args.quiet)
    outputs = output_paths(args.output, request.mode.value, request.seed, request.prompt, len(final))
    for candidate, (path, picture) in enumerate(zip(outputs, final, strict=True)):
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata.write_png(path, picture, request, candidate, paths, extra={"device": device})
        print(path)
    return 0
