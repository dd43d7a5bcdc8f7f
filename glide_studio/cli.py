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
import sys
from pathlib import Path

from glide_studio import __version__
from glide_studio.cli_run import DEFAULT_OUTPUT

MODES = ("generate", "inpaint", "sdedit", "upsample")


def _text_parser(found):
    from glide_studio.runs.codec import RecordError, parse_text

    def parse(text: str):
        try:
            return parse_text(found, text)
        except (RecordError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = found.name  # argparse names the option's type in its error messages
    return parse


def _add_run_options(parser: argparse.ArgumentParser, from_png: bool = True) -> None:
    """One flag per Request field, from the field's own metadata. No flag has a default, so that an option
    not given falls back to the PNG being repeated, then to the Request's own default."""
    from enum import Enum

    from glide_studio.pipelines.request import Request
    from glide_studio.runs.codec import format_text, specs

    inputs = parser.add_argument_group("inputs")
    settings = parser.add_argument_group("run settings")
    for found in specs(Request):
        if found.is_pixels:
            inputs.add_argument(f"--{found.name}", type=Path, default=argparse.SUPPRESS, help=found.metadata["help"])
            continue
        if not found.flag:
            continue
        help_text = found.metadata["help"]
        if found.default not in (None, ""):
            help_text += f" (default {format_text(found.default)})"
        choices = list(found.kind) if isinstance(found.kind, type) and issubclass(found.kind, Enum) else None
        metavar = None if choices else found.flag[2:].upper().replace("-", "_")
        settings.add_argument(found.flag, dest=found.name, type=_text_parser(found), choices=choices,
                              metavar=metavar, default=argparse.SUPPRESS, help=help_text)
    if from_png:
        inputs.add_argument("--from-png", type=Path, help="repeat the run recorded in this PNG's metadata")
    context = parser.add_argument_group("where it runs, and output")
    context.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the recorded one, else cuda when "
                         "available)")
    context.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: fp16 on CUDA, bf16 on CPUs that support it, else fp32 (the reference's numbers); "
        "repeat uses the recorded one",
    )
    context.add_argument(
        "--output",
        "-o",
        help=f"output file, or a pattern with {{mode}} {{seed}} {{candidate}} {{prompt}} "
        f"(default {DEFAULT_OUTPUT}); a directory gets the default name",
    )
    context.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


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
    importlib.import_module("glide_studio.checkpoints.cli_commands").register(subparsers)


def launch_gui(argv: list[str]) -> int:
    try:
        main_window = importlib.import_module("glide_studio.ui.main_window")
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("PySide6"):
            raise  # one of our own modules is broken: that is a bug to see, not a missing extra
        print("glide-studio: the editor needs PySide6 (pip install PySide6-Essentials); headless commands "
              "still work: glide-studio --help", file=sys.stderr)
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
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return True
    return type(error).__module__.startswith("glide_studio.")


def _run_command(args: argparse.Namespace) -> int:
    from glide_studio.cli_run import run_command

    return run_command(args)
