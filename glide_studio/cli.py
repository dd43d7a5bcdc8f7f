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
import math
import sys
from pathlib import Path

from glide_studio import __version__
from glide_studio.cli_run import DEFAULT_OUTPUT, RANDOM_SEED
from glide_studio.logs import log_error, logger, setup_logging

MODES = ("generate", "inpaint", "sdedit", "upsample")
_log = logger.getChild("cli")

EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_RUNTIME = 4
EXIT_INTERRUPTED = 130
EXIT_STATUS_HELP = f"""exit status:
  0    done
  1    an internal error (a bug: its traceback is printed, please report it)
  {EXIT_USAGE}    usage error: the command line cannot be run as given
  {EXIT_INPUT}    bad input data: a picture, mask or PNG that cannot be used
  {EXIT_RUNTIME}    runtime failure: a model, the device, memory or the disk failed the run
  {EXIT_INTERRUPTED}  interrupted (Ctrl+C)"""

# (module, class) -> exit status, most specific first. Looked up in sys.modules: an error can only be an
# instance of a class whose module is loaded, so classifying one imports nothing.
_EXIT_STATUS = (
    ("glide_studio.cli_run", "InputDataError", EXIT_INPUT),
    ("glide_studio.cli_run", "CliError", EXIT_USAGE),
    ("glide_studio.checkpoints.errors", "UnknownCheckpointError", EXIT_USAGE),
    ("glide_studio.imageio", "ImageLoadError", EXIT_INPUT),
    ("PIL.Image", "DecompressionBombError", EXIT_INPUT),  # a picture read outside imageio (the input store)
    ("glide_studio.png_metadata", "MetadataError", EXIT_INPUT),
    ("glide_studio.runs.codec", "RecordError", EXIT_INPUT),
    ("glide_studio.pipelines.errors", "PipelineError", EXIT_INPUT),
    ("glide_studio.pipelines.editbox", "EditBoxError", EXIT_INPUT),
    ("glide_studio.runs.errors", "RunError", EXIT_RUNTIME),
    ("glide_studio.checkpoints.errors", "CheckpointError", EXIT_RUNTIME),
)


def exit_status(error: BaseException) -> int | None:
    """The exit status for an error a user can act on, or None for a bug (which keeps its traceback)."""
    for module, name, status in _EXIT_STATUS:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            return status
    if isinstance(error, OSError):  # a folder that cannot be written, a full disk
        return EXIT_RUNTIME
    if type(error).__module__.startswith("glide_studio."):
        return EXIT_RUNTIME
    return None


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:  # str() of a KeyError is its repr
        return str(error.args[0])
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error) or type(error).__name__


def _not_text(text: str) -> str | None:
    """Why a command-line string is not text: bytes that were not UTF-8 reach Python as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raw = text.encode("utf-8", "surrogateescape")[error.start:error.start + 1]
        byte = f"byte 0x{raw[0]:02x}" if raw else "a character"
        return f"is not valid UTF-8 text ({byte} at position {error.start}); give it as UTF-8"
    return None


def _text_parser(found):
    from glide_studio.runs.codec import RecordError, parse_item, parse_text

    read = parse_item if found.item_kind is not None else parse_text  # a list field: one item per repeat

    def parse(text: str):
        problem = _not_text(text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        if found.name == "seed" and text.strip() == str(RANDOM_SEED):
            return RANDOM_SEED
        try:
            return read(found, text)
        except (RecordError, ValueError) as error:
            extra = f" (or {RANDOM_SEED} for a random seed)" if found.name == "seed" else ""
            raise argparse.ArgumentTypeError(f"{error}{extra}") from None

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
            inputs.add_argument(found.flag, type=Path, default=argparse.SUPPRESS, help=found.metadata["help"])
            continue
        if not found.flag:
            continue
        help_text = found.metadata["help"]
        if found.name == "seed":
            help_text += f"; {RANDOM_SEED} draws a random one (it is recorded)"
        if found.default not in (None, "", ()):
            help_text += f" (default {format_text(found.default)})"
        choices = list(found.kind) if isinstance(found.kind, type) and issubclass(found.kind, Enum) else None
        metavar = None if choices else found.flag[2:].upper().replace("-", "_")
        repeated = {"action": "append"} if found.item_kind is not None else {}
        settings.add_argument(found.flag, dest=found.name, type=_text_parser(found), choices=choices,
                              metavar=metavar, default=argparse.SUPPRESS, help=help_text, **repeated)
    if from_png:
        inputs.add_argument("--from-png", type=Path, help="start from the settings of the candidate this PNG "
                            "records (its own seed, one candidate unless --candidates); options override them")
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
    context.add_argument("--max-megapixels", type=_positive("--max-megapixels"), metavar="MP",
                         help="the largest input picture accepted (default: $GLIDE_STUDIO_MAX_MEGAPIXELS, else "
                         "Pillow's decompression-bomb limit of 89.5)")
    context.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _positive(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive number, got {text!r}")
        return value

    parse.__name__ = flag
    return parse


def build_parser(run_options: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``run_options=False`` leaves the run commands' flags out (they come from the Request
    fields, which import torch), for a top-level ``--help`` that answers at once."""
    parser = argparse.ArgumentParser(
        prog="glide-studio",
        description="Text-guided image editing with GLIDE. Without a command, opens the editor: "
        "glide-studio [FILE] [--fake-engine].",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        sub = subparsers.add_parser(mode, help=helps[mode], description=helps[mode], epilog=EXIT_STATUS_HELP,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if run_options:
            _add_run_options(sub)
        sub.set_defaults(func=_run_command)
    repeat = subparsers.add_parser(
        "repeat",
        help="run again what a result PNG records",
        description="Run again what a result PNG records: the same pixels, for the candidate that PNG holds. "
        "Options override its fields; with --seed or --candidates it is a new run from that candidate's "
        "settings (its own seed: the run's seed + its number, as A1111 numbers them).",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    repeat.add_argument("png", type=Path, help="a PNG written by glide-studio")
    if run_options:
        _add_run_options(repeat, from_png=False)
    repeat.set_defaults(func=_run_command)
    _register_checkpoint_commands(subparsers)
    sd_models = subparsers.add_parser(
        "sd-models", help="the Stable Diffusion models known by name (the optional sd extra)",
        description="The Stable Diffusion models known by name, with their Hub repository, size and licence. Run one "
        "with --model sd:NAME (fetched from the Hub on first use), or give --model sd:PATH for a diffusers folder or a "
        ".safetensors file, or sd:OWNER/REPO for any Hub repository.")
    sd_models.set_defaults(func=_sd_models_command)
    sd_download = subparsers.add_parser(
        "sd-download", help="fetch a Stable Diffusion model from the Hugging Face Hub (the sd extra)",
        description="Fetch a known Stable Diffusion model (see sd-models) or any Hub repository (OWNER/REPO) into "
        "huggingface_hub's cache, with progress; an interrupted download goes on where it stopped. Only the files "
        "a run needs are fetched (safetensors weights, configs, tokenizer).")
    sd_download.add_argument("name", help="a known name (sd15-inpainting; taesd for full-resolution step "
                                         "previews) or a Hub repository id, with or without sd:")
    sd_download.set_defaults(func=_sd_download_command)
    return parser


def _sd_models_command(args: argparse.Namespace) -> int:
    from glide_studio import sd
    from glide_studio.sd.registry import KNOWN_MODELS

    installed = sd.available()
    if not installed:
        print(sd.INSTALL_HINT)
    for known in KNOWN_MODELS:
        if installed:
            from glide_studio.sd.loading import is_present

            state = "downloaded" if is_present(f"sd:{known.name}") else "not downloaded"
        else:
            state = "needs the sd extra"
        print(f"sd:{known.name:<18} {known.size_gb:>4.1f} GB  {state:<16} {known.repo_id}\n"
              f"    {known.description}\n    licence: {known.licence}")
    from glide_studio.sd.taesd import KNOWN_TINY_DECODERS, folder

    for decoder in KNOWN_TINY_DECODERS:
        if installed:
            state = "downloaded" if folder(decoder.repo_id) else "not downloaded"
        print(f"{decoder.name:<21} {decoder.size_mb:>4.1f} MB  {state:<16} {decoder.repo_id}\n"
              f"    {decoder.description} (sd-download {decoder.name})\n    licence: {decoder.licence}")
    from glide_studio.sd.registry import KNOWN_IP_ADAPTERS

    for adapter in KNOWN_IP_ADAPTERS:  # image prompts: --ip-adapter NAME with --ip-adapter-image
        if installed:
            from glide_studio.sd import hub

            state = "downloaded" if hub.cached_files(adapter.repo_id, adapter.files) else "not downloaded"
        print(f"{adapter.name:<21} {adapter.size_gb:>4.1f} GB  {state:<16} {adapter.repo_id}\n"
              f"    {adapter.description} (sd-download {adapter.name})\n    licence: {adapter.licence}")
    return 0


def _sd_download_command(args: argparse.Namespace) -> int:
    from glide_studio import sd
    from glide_studio.pipelines.request import SD_MODEL_PREFIX

    sd.require()
    from glide_studio.progress import ProgressBar
    from glide_studio.sd.loading import folder_of, resolve
    from glide_studio.sd.registry import known_ip_adapter
    from glide_studio.sd.taesd import TINY_DECODER_FILES, known_tiny_decoder

    adapter = known_ip_adapter(args.name.removeprefix(SD_MODEL_PREFIX))
    if adapter is not None:  # an IP-Adapter: its weights and image encoder only
        from glide_studio.sd import hub

        print(hub.fetch_files(adapter.repo_id, adapter.files, progress_class=ProgressBar))
        return 0
    decoder = known_tiny_decoder(args.name.removeprefix(SD_MODEL_PREFIX))
    if decoder is not None:  # TAESD: the step previews' decoder, not a model
        from glide_studio.sd import hub

        print(hub.fetch_files(decoder.repo_id, TINY_DECODER_FILES, progress_class=ProgressBar))
        return 0
    name = args.name if args.name.startswith(SD_MODEL_PREFIX) else SD_MODEL_PREFIX + args.name
    source = resolve(name)
    if source.repo_id is None:
        print(f"{name} is a local model: nothing to download")
        return 0
    print(folder_of(source, progress_class=ProgressBar))
    return 0


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
        return EXIT_RUNTIME
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
        print(f"glide-studio {__version__}")
        return 0
    parser = build_parser(run_options=argv not in (["-h"], ["--help"]))
    if _is_gui_command_line(argv, parser):
        return launch_gui(argv)
    args = parser.parse_args(argv)
    _check_numbers(parser, args)
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"the command {args.command!r} cannot be run")
    setup_logging(f"command {args.command}", argv)
    _log.info("settings: %s", {key: str(value) for key, value in vars(args).items() if key != "func"})
    try:
        status = func(args)
    except KeyboardInterrupt:
        _log.info("interrupted")
        print("glide-studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        # Our own error types carry a message written for the user; anything else is a bug and keeps
        # its traceback.
        status = exit_status(error)
        log_error(f"{args.command} failed (exit status {status if status is not None else 1})", error)
        if status is None:
            raise
        print(f"glide-studio: error: {_message(error)}", file=sys.stderr)
        return status
    _log.info("%s done (exit status %d)", args.command, int(status or 0))
    return int(status or 0)


def _check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse's float() takes "nan", "inf" and negative seconds; no option of ours means anything by them."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    timeout = getattr(args, "timeout", None)
    if isinstance(timeout, (int, float)) and timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {timeout:g}")


def _run_command(args: argparse.Namespace) -> int:
    from glide_studio.cli_run import run_command

    return run_command(args)
