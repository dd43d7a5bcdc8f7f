"""Per-step time of the full-size GLIDE UNets (random weights), the fast path against plain fp32 eager.

Cases: base-inpaint with classifier-free guidance (model batch 2, 64 px) and upsample-inpaint (batch 1,
256 px). For each: seconds per denoising step, the fraction of this machine's compute floor (the UNet's FLOPs,
counted by torch's FlopCounterMode, at the GFLOPS of a large matmul in the same dtype), the fast path's max
deviation from fp32, and the peak resident memory while stepping. Then the cost of turning a 256 px pred_x0
into a uint8 preview thumbnail, and one full inpaint with the demo model when its weights exist.

Times are the best of the calls, wall clock; "CPU time/threads" is what the step would take on idle cores
when other processes compete for them. Run from the repository root (about 4 minutes on 2 busy cores):

    PYTHONPATH=. nice -n 19 python benchmarks/bench_speed.py [--cases base,upsample] [--repeats 1]
        [--variants fp32,bf16] [--demo-steps 25]

Variants: fp32 | bf16 (the fast path: autocast with the body's convolutions stored in bf16) | bf16ac (autocast
alone, fp32 weights), each optionally -cl (channels_last) and/or -compile (torch.compile): bf16-cl, fp32-compile...
They run in that order whatever the order given, since storing bf16 weights converts the network in place.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bench_precision import random_inputs, random_unet, with_text_embedding
from torch.utils.flop_counter import FlopCounterMode

from glide_studio.app.preview import to_uint8_images
from glide_studio.config import UNET_PRESETS
from glide_studio.models import build_model
from glide_studio.models.precision import Precision, choose_precision, prepare_model

CASES = {"base": ["base-inpaint", 2, 64], "upsample": ["upsample-inpaint", 1, 256]}


# -- machine and memory ---------------------------------------------------------------------------------

def matmul_gflops(dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 5) -> float:
    """The best rate over square products of a few sizes, each the best of `repeats`: one size alone can miss
    the library's sweet spot (fp32 then looked slower than the convolutions), and on shared cores the best
    sample is the closest to the machine."""
    rates = []
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        rates.append(2 * n**3 / best / 1e9)
    return max(rates)


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_memory() -> bool:
    """Linux lets a process reset its own resident high-water mark (VmHWM) by writing 5 to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> tuple[float | None, str]:
    """Resident peak from /proc (Linux); elsewhere psutil's current RSS, the best it offers, if installed."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak, "peak RSS"
    try:
        import psutil
    except ImportError:
        return None, ""
    return psutil.Process().memory_info().rss / 2**20, "RSS after"


# -- FLOPs ------------------------------------------------------------------------------------------------

def unet_gflop(preset: str, batch: int, size: int) -> float:
    """FLOPs of one denoising forward (text embedding excluded, as the pipelines compute it once), counted on
    the meta device: shapes only, no arithmetic."""
    model = build_model(UNET_PRESETS[preset], device="meta")
    (x, timesteps), kwargs = random_inputs(model, batch, size)
    with torch.device("meta"):
        kwargs = with_text_embedding(model, {k: v.to("meta") for k, v in kwargs.items()}, contextlib.nullcontext())
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x.to("meta"), timesteps.to("meta"), **kwargs)
    return counter.get_total_flops() / 1e9


# -- variants ---------------------------------------------------------------------------------------------

@dataclass
class Variant:
    name: str
    precision: Precision
    channels_last: bool
    compile: bool

    @classmethod
    def parse(cls, name: str) -> Variant:
        mode, *flags = name.split("-")
        unknown = set(flags) - {"cl", "compile"}
        if mode not in ("fp32", "bf16", "bf16ac") or unknown:
            raise SystemExit(f"unknown variant {name!r}: fp32, bf16 or bf16ac, optionally -cl and/or -compile")
        precision = choose_precision("cpu", "bf16" if mode == "bf16ac" else mode)
        if mode == "bf16ac":
            precision = Precision(precision.device, autocast_dtype=torch.bfloat16)
        return cls(name, precision, "cl" in flags, "compile" in flags)

    @property
    def order(self) -> int:
        return 2 if self.precision.bf16_weights else (1 if self.precision.autocast_dtype else 0)


@dataclass
class Measurement:
    seconds: list[float]
    cpu_seconds: list[float]
    first_call: float
    output: torch.Tensor
    memory_mb: float | None
    memory_label: str


def measure(model, variant: Variant, inputs, kwargs, repeats: int) -> Measurement | str:
    """Steps of `variant` (after one warm-up call, reported as first_call); a string says why it could not run."""
    x, timesteps = inputs
    prepare_model(model, variant.precision)
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    step_kwargs = with_text_embedding(model, kwargs, variant.precision.autocast())
    runner = model
    if variant.compile:
        try:
            runner = torch.compile(model)
        except Exception as error:  # noqa: BLE001  compile is optional: any failure means "not available here"
            return f"torch.compile unavailable: {type(error).__name__}: {error}"
    reset_peak_memory()
    times, cpu_times = [], []
    try:
        with torch.no_grad():
            for _ in range(repeats + 1):
                start, cpu_start = time.perf_counter(), time.process_time()
                with variant.precision.autocast():
                    output = runner(x, timesteps, **step_kwargs)
                output = output.float()
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    except Exception as error:  # noqa: BLE001  a failed compile surfaces at the first call
        return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        model.to(memory_format=torch.contiguous_format)
    # Eager mode has no real warm-up cost, so its first call counts (on a shared machine every sample helps);
    # a compiled variant's first call is the compilation.
    kept = slice(1, None) if variant.compile else slice(None)
    return Measurement(times[kept], cpu_times[kept], times[0], output, *peak_memory_mb())


def run_case(case: str, variants: list[Variant], repeats: int, peaks: dict[torch.dtype, float]) -> float | None:
    preset, batch, size = CASES[case]
    gflop = unet_gflop(preset, batch, size)
    start = time.perf_counter()
    model = random_unet(preset)
    inputs, kwargs = random_inputs(model, batch, size)
    print(f"\n== {preset}, model batch {batch}, {size} px: {gflop:.0f} GFLOP per step "
          f"(random weights built in {time.perf_counter() - start:.1f} s)")
    reference: torch.Tensor | None = None
    fastest = None
    for variant in variants:
        result = measure(model, variant, inputs, kwargs, repeats)
        if isinstance(result, str):
            print(f"  {variant.name:13s} {result}")
            continue
        best = min(result.seconds)
        dtype = variant.precision.autocast_dtype or torch.float32
        floor = gflop / peaks[dtype]
        cpu = min(result.cpu_seconds) / torch.get_num_threads()
        line = (f"  {variant.name:13s} {best:7.2f} s/step (CPU time/threads {cpu:.2f} s, first call "
                f"{result.first_call:.2f} s), "
                f"{gflop / best:6.1f} GFLOPS = {floor / best:5.1%} of the {dtype_name(dtype)} matmul floor "
                f"({floor:.2f} s)")
        if result.memory_mb is not None:
            line += f", {result.memory_label} {result.memory_mb:.0f} MB"
        if reference is None and variant.name == "fp32":
            reference = result.output
        elif reference is not None:
            deviation = (result.output - reference).abs()
            line += f", vs fp32: max {deviation.max():.4f}, mean {deviation.mean():.5f}"
        print(line)
        fastest = best if fastest is None else min(fastest, best)
    return fastest


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]


# -- preview and the demo model ---------------------------------------------------------------------------

def preview_cost(step_seconds: float | None, repeats: int = 20) -> None:
    pred_x0 = torch.rand(1, 3, 256, 256) * 2 - 1
    to_uint8_images(pred_x0, max_side=128)
    start = time.perf_counter()
    for _ in range(repeats):
        thumbnail = to_uint8_images(pred_x0, max_side=128)
    seconds = (time.perf_counter() - start) / repeats
    line = f"\npreview: (1,3,256,256) pred_x0 -> {thumbnail.shape} uint8 thumbnail in {seconds * 1e3:.2f} ms"
    if step_seconds:
        line += f" = {seconds / step_seconds:.3%} of a {step_seconds:.2f} s upsample step"
    print(line)


def demo_inpaint(steps: int, upsample_steps: int) -> None:
    from glide_studio.pipelines import run
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs.models import load_model_set

    names = ("demo-base-inpaint", "demo-upsample-inpaint")
    side = 256
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = np.zeros((side, side), dtype=np.uint8)
    mask[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
    request = Request(mode=Mode.INPAINT, prompt="a red circle above a blue square", image=image, mask=mask,
                      base_model=names[0], upsample_model=names[1], steps=steps, upsample_steps=upsample_steps)
    print(f"\ndemo model: one inpaint, {steps} base + {upsample_steps} upsample steps, {side} px")
    for mode in ("fp32", "auto"):
        models = load_model_set(request, "cpu", mode)  # fresh networks: the fast path converts them in place
        start = time.perf_counter()
        count = sum(1 for _ in run(models, request))
        seconds = time.perf_counter() - start
        print(f"  {models.precision.name:13s} {seconds:6.2f} s wall "
              f"({count} steps, {seconds / count * 1e3:.0f} ms/step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="base,upsample")
    parser.add_argument("--variants", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=1,
                        help="steps per variant after the first (eager variants count the first too)")
    parser.add_argument("--demo-steps", type=int, default=25)
    parser.add_argument("--demo-upsample-steps", type=int, default=15)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--upsample-size", type=int, default=256, help="smaller for a quick look")
    args = parser.parse_args()
    CASES["upsample"][2] = args.upsample_size
    variants = sorted((Variant.parse(name) for name in args.variants.split(",")), key=lambda v: v.order)
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}: choose from {sorted(CASES)}")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peaks = {torch.float32: matmul_gflops(torch.float32), torch.bfloat16: matmul_gflops(torch.bfloat16)}
    print(f"best square matmul: fp32 {peaks[torch.float32]:.0f} GFLOPS, bf16 {peaks[torch.bfloat16]:.0f} GFLOPS")
    upsample_step = None
    for case in cases:
        best = run_case(case, variants, args.repeats, peaks)
        if case == "upsample":
            upsample_step = best
    preview_cost(upsample_step)
    if not args.no_demo:
        demo_inpaint(args.demo_steps, args.demo_upsample_steps)


if __name__ == "__main__":
    main()
