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
    """A command line that cannot be run as given (a usage error)."""


class InputDataError(CliError):
    """The command line is fine, but a file it names cannot be used as the run's input."""


RANDOM_SEED = -1
"""`--seed -1`: draw a random seed (the one drawn is recorded like any other)."""


def output_paths(pattern: str | None, mode: str, seed: int, prompt: str, count: int,
                 candidates: list[int] | None = None) -> list[Path]:
    """One .png path per candidate from ``--output`` (a file, a directory or a pattern); `candidates` are the
    numbers written in {candidate} (default 0 .. count-1)."""
    candidates = list(range(count)) if candidates is None else candidates
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
    for candidate in candidates:
        try:
            name = pattern.format(**values, candidate=candidate)
        except (KeyError, IndexError, ValueError) as error:
            fields = ", ".join("{" + field + "}" for field in PATTERN_FIELDS)
            raise CliError(f"--output pattern {pattern!r} is not valid ({error}); use {fields}") from None
        paths.append(Path(name))
    if len(set(paths)) != len(paths):
        raise CliError(f"--output pattern {pattern!r} gives the same file name to several candidates")
    return paths


def _recorded_file(recorded_path: str | None, beside: Path | None) -> Path | None:
    """Where a recorded input file is now: records name files without their folder (shared metadata holds no
    absolute paths), so the name is looked for beside the PNG being repeated, then in the working folder."""
    if not recorded_path:
        return None
    name = Path(recorded_path)
    for folder in ([beside.parent] if beside is not None else []) + [Path.cwd()]:
        if (folder / name).is_file():
            return folder / name
    return name if name.is_absolute() else None


def _recorded_input(name: str, record, store, beside: Path | None) -> tuple[Any, Path | None]:
    """A recorded input: from its file when that still holds the same pixels, else from the input store."""
    from glide_studio.imageio import load_image, load_mask, load_sketch
    from glide_studio.png_metadata import InputMismatchError
    from glide_studio.runs.record import array_digest

    recorded = record.inputs[name]
    path = _recorded_file(recorded.path, beside)
    changed = False
    if path is not None and path.is_file():
        loader = {"mask": lambda p: load_mask(p, None), "sketch": load_sketch}.get(name, load_image)
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
    where = f"as {recorded.path} beside it nor " if recorded.path else ""
    raise InputDataError(f"the recorded run's {name} is neither {where}kept in {store.root}; pass --{name}")


def _max_pixels(args: argparse.Namespace) -> int | None:
    megapixels = getattr(args, "max_megapixels", None)
    return None if megapixels is None else int(megapixels * 1e6)


def _load_inputs(args: argparse.Namespace, record, beside: Path | None) -> tuple[dict, dict]:
    """The pixel arrays (given on the command line, else recorded) and the file each came from."""
    from glide_studio.imageio import load_image, load_mask, load_sketch
    from glide_studio.runs.inputs import InputStore
    from glide_studio.runs.record import pixel_fields

    arrays: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    store = InputStore()
    limit = _max_pixels(args)
    for name in pixel_fields():
        given = getattr(args, name, None)
        if given is not None:
            paths[name] = given
        elif record is not None and name in record.inputs:
            arrays[name], path = _recorded_input(name, record, store, beside)
            if path is not None:
                paths[name] = path
    if "image" not in arrays and "image" in paths:
        arrays["image"] = load_image(paths["image"], max_pixels=limit)
    image = arrays.get("image")
    size = None if image is None else (image.shape[1], image.shape[0])
    if "mask" not in arrays and "mask" in paths:
        arrays["mask"] = load_mask(paths["mask"], size, max_pixels=limit, on_note=_note(args))
    if "sketch" not in arrays and "sketch" in paths:
        arrays["sketch"] = load_sketch(paths["sketch"], max_pixels=limit)
    for name in set(paths) - set(arrays) - {"mask", "sketch"}:  # the reference picture: any size, read as RGB
        arrays[name] = load_image(paths[name], max_pixels=limit)
    sketch = arrays.get("sketch")
    if sketch is not None and size is not None and (sketch.shape[1], sketch.shape[0]) != size:
        raise InputDataError(
            f"the sketch is {sketch.shape[1]}x{sketch.shape[0]} but the picture is {size[0]}x{size[1]}: "
            "it must be a layer of the same size"
        )
    return arrays, {name: str(path) for name, path in paths.items()}


def _note(args: argparse.Namespace):
    """Says on stderr how an input was read when that is not obvious (a soft mask), unless --quiet."""
    def note(message: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"glide-studio: note: {message}", file=sys.stderr)
    return note


def _check_mode_inputs(request) -> None:
    from glide_studio.runs.codec import specs

    for found in specs(type(request)):
        needed = found.is_pixels and request.mode.value in found.metadata["required"]
        if needed and getattr(request, found.name) is None:
            raise CliError(f"{request.mode.value} needs --{found.name}")


def _check_given_options_matter(request, given: list[str]) -> None:
    """An option that this run would ignore (--strength for inpaint, --eta without ddim) is refused rather than
    silently dropped; the message says where it would apply."""
    from glide_studio.pipelines.request import Mode
    from glide_studio.runs.codec import spec

    for name in given:
        found = spec(type(request), name)
        if found.relevant(request):
            continue
        elsewhere = [mode.value for mode in Mode if found.relevant(request.with_(mode=mode))]
        where = f"; it applies to {', '.join(elsewhere)}" if elsewhere and request.mode.value not in elsewhere else ""
        raise CliError(f"{found.flag} has no effect on this {request.mode.value} run with its settings{where}: "
                       "leave it out")


def _check_model_roles(request) -> None:
    """A base model given as the upsampler or the other way round is refused before anything loads."""
    from glide_studio import checkpoints
    from glide_studio.pipelines.request import Family, Mode, family_of

    roles = [("--upsample-model", request.upsample_model, True)]
    if request.mode != Mode.UPSAMPLE:
        roles.insert(0, ("--model", request.base_model, False))
    for flag, name, upsampler in roles:
        if name is None or family_of(name) is not Family.GLIDE or family_of(request.base_model) is not Family.GLIDE:
            continue  # another family's models are its loader's to check
        try:
            checkpoints.get_spec(name)
        except checkpoints.UnknownCheckpointError as error:
            raise CliError(f"{flag}: {error.args[0]}") from None
        is_upsampler = bool(checkpoints.network_options(name).get("super_res"))
        if is_upsampler == upsampler:
            continue
        if is_upsampler:
            raise CliError(f"{flag} {name} is an upsampler (it enlarges a 64 px picture); give a base model as "
                           f"--model and the upsampler as --upsample-model")
        raise CliError(f"{flag} {name} is a base model, not an upsampler; give the upsampler as --upsample-model "
                       "(or none to stop at 64 px)")


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
    """The device to run on: `name` when this machine has it, else a clear error; none or "auto": CUDA when
    available, else the CPU."""
    import torch

    from glide_studio.runs.errors import DeviceUnavailableError

    if not name or name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CliError(f"unknown device {name!r}: use cpu, cuda, cuda:N (the N-th GPU) or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceUnavailableError(f"--device {name}: {why}; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceUnavailableError(f"--device {name}: this machine has {count} CUDA device(s), "
                                         f"cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError(f"--device {name}: Apple's MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise CliError(f"device {name!r} is not supported: use cpu, cuda, cuda:N or mps")
    return name


def run_context(args: argparse.Namespace, record) -> tuple[str, str]:
    """(device, precision) to run on: the command line's, else the recorded run's, which must be possible here:
    other hardware gives other pixels, so a repeat that cannot match says so instead of running."""
    from glide_studio.models.precision import cpu_supports_bf16
    from glide_studio.runs.errors import PrecisionUnavailableError

    context = record.context if record is not None else None
    if args.device or context is None:
        device = resolve_device(args.device)
    else:
        device = context.device
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
    return resolve_device(device), precision


def out_of_memory(error: BaseException, device: str, request):
    """An OutOfMemoryError that says what to reduce; on CUDA the allocator's cache is freed first, so the
    process is left usable."""
    from glide_studio.runs.errors import OutOfMemoryError

    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    advice = []
    if request.batch > 1:
        advice.append(f"fewer candidates (--candidates, now {request.batch})")
    box = request.edit_box
    if box is not None and max(box.width, box.height) > 256:
        advice.append(f"a smaller edit box (--box, now {box.width}x{box.height})")
    if str(device).startswith("cuda"):
        advice.append("--precision fp16")
        advice.append("--device cpu")
    else:
        advice.append("closing other programs")
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    freed = " (the CUDA cache was freed)" if str(device).startswith("cuda") else ""
    return OutOfMemoryError(f"out of memory on {device}{freed}: {detail[:200]}; try {', or '.join(advice)}")


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


def _starting_record(args: argparse.Namespace, png: Path | None):
    """The recorded run to start from, and which of its candidates to keep (None: all that run)."""
    import dataclasses

    from glide_studio import png_metadata as metadata

    if png is None:
        return None, None
    found = metadata.read_record(png)
    record = found.record
    if found.shared_noise:
        print(f"glide-studio: note: {png} was written before each candidate had a seed of its own (seed + its "
              f"number); its batch of {record.request.batch} drew all from one generator, so the pixels will "
              "differ", file=sys.stderr)
    request, candidate = record.request, record.candidate
    if not 0 <= candidate < request.batch:
        candidate = 0
    exact = args.command == "repeat" and not {"seed", "batch"} & set(vars(args)) and request.batch > 1
    if exact:
        # The batch is run again and only this candidate kept: a network's arithmetic differs in the last bits
        # between batch sizes and the sampler carries that on, so candidate i alone (its own seed and noise,
        # request.alone(i)) differs in a few values (benchmarks/eval_candidate_seeds.py), and a repeat promises
        # the same pixels.
        return record, candidate
    return dataclasses.replace(record, request=request.alone(candidate), candidate=0), None


def _keep_inputs(record, quiet: bool) -> None:
    """The inputs by digest in the user's store, so that `repeat` finds them wherever the PNG goes (its record
    names the files without their folders)."""
    from glide_studio.runs.inputs import InputStore

    try:
        InputStore().put_inputs(record)
    except OSError as error:
        if not quiet:
            print(f"glide-studio: note: the inputs were not kept for repeat ({error})", file=sys.stderr)


def _random_seed(fields: dict, quiet: bool) -> None:
    if fields.get("seed") != RANDOM_SEED:
        return
    import secrets

    from glide_studio.pipelines.request import MAX_SEED

    fields["seed"] = secrets.randbelow(MAX_SEED + 1)
    if not quiet:
        print(f"glide-studio: random seed {fields['seed']}", file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    from glide_studio import png_metadata as metadata
    from glide_studio.pipelines.editbox import with_default_box
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs.codec import specs
    from glide_studio.runs.drain import drain
    from glide_studio.runs.errors import is_out_of_memory
    from glide_studio.runs.models import load_model_set
    from glide_studio.runs.record import RunContext, RunRecord
    from glide_studio.runs.streams import run

    png = args.png if args.command == "repeat" else args.from_png
    record, keep = _starting_record(args, png)
    fields = {found.name: getattr(args, found.name) for found in specs(Request)
              if not found.is_pixels and hasattr(args, found.name)}
    given = list(fields)
    _random_seed(fields, args.quiet)
    if args.command != "repeat":
        fields["mode"] = Mode(args.command)
    arrays, paths = _load_inputs(args, record, png)
    if record is not None:
        request = record.request.with_(**fields, **arrays)
        metadata.check_inputs(record, {name: arrays.get(name) for name in record.inputs
                                       if getattr(args, name, None) is None})
    else:
        request = with_default_box(Request(**fields, **arrays).with_family_defaults(keep=given))
    request = request.without_unused_inputs()
    _check_mode_inputs(request)
    _check_given_options_matter(request, given)
    request.check()
    _check_model_roles(request)
    # A bad --output, an unwritable folder or a full disk is refused before minutes of sampling, not after.
    kept = list(range(request.batch)) if keep is None else [keep]
    outputs = output_paths(args.output, request.mode.value, request.seed, request.prompt, len(kept), kept)
    _check_room(outputs, request)
    device, precision = run_context(args, record)
    if record is not None and record.context.compiled and not args.quiet:
        # The command line never compiles (a first compile takes minutes, more than a demo run): say so.
        print("glide-studio: note: the recorded run ran compiled networks (torch.compile, in the editor); this "
              "runs them eager, whose rounding differs, so the pixels can differ slightly", file=sys.stderr)
    metadata.check_writable(RunRecord.of(request, RunContext(device, precision), paths=paths))

    on_step, close_bar = _progress(args.quiet)
    try:
        models = load_model_set(request, device, precision)
        final = drain(run(models, request), on_step)
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        raise out_of_memory(error, device, request) from None
    finally:
        close_bar()
    if len(final) != request.batch:
        raise CliError(f"the pipeline returned {len(final)} pictures for {request.batch} candidates")
    context = RunContext.here(device, models.precision.name, getattr(models, "model_hash", ""))
    ran = RunRecord.of(request, context, paths=paths)
    for candidate, path in zip(kept, outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata.write_png(path, final[candidate], ran.for_candidate(candidate))
        print(path)
    _keep_inputs(ran, args.quiet)
    return 0
