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
    run.add_argument("--sampler", help="dpm++2m-sde (the default), dpm++2m, ddim or ancestral")
    run.add_argument("--guidance-scale", type=float, help="guidance strength (3 is GLIDE's usual)")
    run.add_argument("--guidance", choices=("cfg", "clip"), help="classifier-free (cfg) or CLIP guidance")
    run.add_argument("--strength", type=float, help="SDEdit noise strength in (0, 1]")
    run.add_argument("--eta", type=float, help="DDIM stochasticity (sampler ddim only)")
    run.add_argument("--seed", type=int, help="random seed")
    run.add_argument("--candidates", type=_positive_int, help="how many results to draw")
    models = parser.add_argument_group("models and output")
    models.add_argument("--model", help="base model name")
    models.add_argument("--upsample-model", help="upsampler model name, or 'none' to stop at 64 px")
    models.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    models.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto: fp16 on CUDA, bf16 on CPUs that support it, else fp32 (the reference's numbers)",
    )
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
        sub.set_defaults(func=_run_command)
    repeat = subparsers.add_parser(
        "repeat",
        help="run again what a result PNG records",
        description="Run again what a result PNG records (all its candidates); options override fields.",
    )
    repeat.add_argument("png", type=Path, help="a PNG written by glide-studio")
    _add_run_options(repeat, from_png=False)
    repeat.set_defaults(func=_run_command)
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


def _run_command(args: argparse.Namespace) -> int:
    from glide_studio.cli_run import run_command

    return run_command(args)
