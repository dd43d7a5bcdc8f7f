"""Per-step time of the full-size GLIDE networks (random weights) with each speed lever and all together,
against plain fp32 eager of the same networks in the same process.

Cases: base-inpaint with classifier-free guidance (model batch 2 when guided, 64 px) and upsample-inpaint
(batch 1, 256 px). For each precision the script times the calls a stage can make (the whole network at
each batch, and the shallow branch of feature reuse), then prices each lever's stage at the default settings
(or the ones given) by the calls that stage really makes: the sequence comes from the pipelines' own
`StageDenoiser` run over the stage's chain (a recording stand-in network), so the reuse policy and the
guidance window are the shipped ones. `--check` also runs the all-levers stage for real, step by step, and
prints its measured time per step beside the priced one.

Levers: bf16 (the existing fast path), reuse (feature reuse every `--reuse` steps), window (CFG only at noise
levels from `--guidance-stop` up), int8 (dynamic int8 convolutions, glide_studio.models.quantize), all
(bf16 + reuse + window; + int8 with --int8-in-all). The flow line prices the default inpaint (base + upsample
steps) against the reference's default flow (100 ancestral base steps with CFG, 27 upsample steps) in fp32.

    PYTHONPATH=. nice -n 19 python benchmarks/bench_levers.py [--cases base,upsample] [--repeats 2] [--check]
    PYTHONPATH=. python benchmarks/bench_levers.py --tiny --repeats 1   # the code path in seconds

On CUDA (`--device cuda`, fp16 instead of bf16) see bench_levers_cuda.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections import Counter
from types import SimpleNamespace

import torch
from bench_precision import random_inputs, random_unet, with_text_embedding
from bench_speed import peak_memory_mb, reset_peak_memory

from glide_studio.config import UNET_PRESETS, UNetConfig
from glide_studio.models import build_model
from glide_studio.models.precision import Precision, choose_precision, prepare_model
from glide_studio.models.unet import ReusedFeatures
from glide_studio.pipelines.chains import from_noise, start_from_image
from glide_studio.pipelines.levers import (
    SHALLOW_BLOCKS,
    CroppedNetwork,
    Region,
    StageDenoiser,
    network_stride,
    region_to_draw,
    reuse_interval_for,
)
from glide_studio.pipelines.request import Request

CASES = {"base": ("base-inpaint", 64, True, "steps"), "upsample": ("upsample-inpaint", 256, False, "upsample_steps")}
REFERENCE_FLOW = {"base": 100, "upsample": 27}  # the reference's default: 100 ancestral base steps, fast27
TINY = UNetConfig(image_size=64, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions=(32,),
                  num_head_channels=16, xf_width=32, xf_layers=1, xf_heads=2, text_ctx=16, inpaint=True)


# -- which calls a stage makes -------------------------------------------------------------------------------

class RecordingNetwork(torch.nn.Module):
    """Stands in for a UNet: records each call as (kind, rows) and returns zeros of the output's shape."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.calls: list[tuple[str, int]] = []

    def forward(self, x, timesteps, reuse=None, **_):
        self.calls.append(("full" if reuse is None or reuse.deep is None else "shallow", len(x)))
        if reuse is not None and reuse.deep is None:
            reuse.deep = torch.zeros(1)
        return torch.zeros(len(x), 6, *x.shape[2:])


def upsampler_reuse(request: Request, upsampler: bool) -> dict:
    """The stage's own reuse settings, as plans.upsample_stage hands them to StageDenoiser."""
    if not upsampler:
        return {}
    return {"reuse_interval": request.upsample_reuse_interval, "reuse_stop": request.upsample_reuse_stop,
            "reuse_start": 1.0}


def stage_chain(config, request: Request, steps: int, upsampler: bool):
    """The stage's chain as plans builds it (the upsampler's part-way from its strength); only its timesteps
    are used here."""
    if upsampler and request.upsample_strength < 1.0:
        return start_from_image(config.noise_schedule, request.sampler, steps, request.upsample_strength, None)
    return from_noise(config.noise_schedule, request.sampler, steps, upsampler=upsampler)


def typical_region(context: int, size: int, stride: int) -> Region | None:
    """The region the upsampler draws at `context` on the held-out seam tasks' median task (by area, every 4th
    of tasks 20-219 of each kind: a 256 px picture, the automatic edit box, an object's mask), scaled to `size`."""
    import eval_seams

    from glide_studio.pipelines import editbox
    from glide_studio.pipelines.inpaint import upsampler_input
    from glide_studio.pipelines.request import Mode

    sizes = SimpleNamespace(upsample_size=size, base_size=size // 4)
    regions = []
    for kind in eval_seams.KINDS:
        for k in range(20, 220, 4):
            picture, mask, caption, *_ = eval_seams.seam_task(kind, k)
            request = Request(mode=Mode.INPAINT, prompt=caption, image=picture, mask=mask)
            boxed = upsampler_input(sizes, request, editbox.region_to_regenerate(request))
            region = region_to_draw(torch.from_numpy(boxed.mask.astype("float32")), context, stride)
            regions.append(region or (slice(0, size), slice(0, size)))
    regions.sort(key=lambda r: (r[0].stop - r[0].start) * (r[1].stop - r[1].start))
    median = regions[len(regions) // 2]
    return None if median == (slice(0, size), slice(0, size)) else median


def region_label(region: Region | None, size: int) -> str:
    if region is None:
        return f"{size}x{size} (the whole box)"
    height, width = region[0].stop - region[0].start, region[1].stop - region[1].start
    return f"{height}x{width} of {size}x{size} ({height * width / size**2:.0%} of the pixels)"


def stage_calls(config, request: Request, guided: bool, steps: int, upsampler: bool) -> list[tuple[str, int]]:
    """The (kind, rows) of every network call of one stage under `request`'s levers, one candidate."""
    network = RecordingNetwork(SimpleNamespace(diffusion_steps=1000))
    levers = StageDenoiser(network, None, request, guided=guided and request.guidance_scale != 1.0,
                           **upsampler_reuse(request, upsampler))
    denoiser = levers.build("cpu")
    chain = stage_chain(config, request, steps, upsampler)
    x = torch.zeros(1, 3, 1, 1)
    for t in reversed(range(chain.num_steps)):
        denoiser(x, chain.diffusion.timestep_map[t:t + 1], text_emb={"xf_proj": torch.zeros(2, 1)})
    return network.calls


# -- timing the calls -----------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(call, device, repeats: int) -> float:
    with torch.no_grad():
        call()  # warm-up: first-call allocations and kernel selection
        _sync(device)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best


def call_costs(variants: dict, size: int, rows_needed: set[int], repeats: int) -> dict[str, dict]:
    """Seconds per call of each (kind, rows) the stages can make, for each variant (name -> (network,
    precision, shallow too[, region])). The variants' calls are interleaved round by round and the best round kept, so
    that a machine whose load changes while it runs weighs on every variant alike."""
    calls = {}
    for name, (model, precision, shallow, *region) in variants.items():
        for rows in sorted(rows_needed):
            calls.update({(name, kind, rows): call for kind, call in
                          _calls_at(model, precision, size, rows, shallow, *region).items()})
    best = dict.fromkeys(calls, math.inf)
    with torch.no_grad():
        for round_ in range(repeats + 1):  # round 0 warms up: first-call allocations and kernel selection
            for key, (call, device) in calls.items():
                start = time.perf_counter()
                call()
                _sync(device)
                if round_:
                    best[key] = min(best[key], time.perf_counter() - start)
    costs: dict[str, dict] = {name: {} for name in variants}
    for (name, kind, rows), seconds in best.items():
        costs[name][kind, rows] = seconds
    return costs


def _calls_at(model, precision: Precision, size: int, rows: int, shallow: bool, region: Region | None = None) -> dict:
    device = precision.device
    (x, timesteps), kwargs = random_inputs(model, rows, size)
    x, timesteps = x.to(device), timesteps.to(device)
    kwargs = with_text_embedding(model, {key: value.to(device) for key, value in kwargs.items()},
                                 precision.autocast())
    if region is not None:  # the shipped wrapper, so its cutting and padding are timed too
        model = CroppedNetwork(model, region)

    def full():
        with precision.autocast():
            return model(x, timesteps, **kwargs)

    calls = {"full": (full, device)}
    if shallow:
        features = ReusedFeatures(SHALLOW_BLOCKS)
        with torch.no_grad(), precision.autocast():
            model(x, timesteps, reuse=features, **kwargs)

        def reuse():
            with precision.autocast():
                return model(x, timesteps, reuse=features, **kwargs)

        calls["shallow"] = (reuse, device)
    return calls


def priced(calls: list[tuple[str, int]], costs: dict) -> float:
    """Mean seconds per step of a stage making `calls`."""
    return sum(costs[call] for call in calls) / len(calls)


def check_stage(model, precision: Precision, size: int, config, request: Request, guided: bool, steps: int,
                upsampler: bool, region: Region | None = None) -> float:
    """The all-levers stage run for real over its chain (random x at every step): measured seconds per step."""
    device = precision.device
    (x, _), kwargs = random_inputs(model, 1, size)
    rows = 2 if guided else 1
    kwargs = {key: torch.cat([value] * rows).to(device) for key, value in kwargs.items()}
    kwargs = with_text_embedding(model, kwargs, precision.autocast())
    levers = StageDenoiser(model, precision, request, guided=guided, region=region,
                           **upsampler_reuse(request, upsampler))
    denoiser = levers.build(device)
    chain = stage_chain(config, request, steps, upsampler)
    x = x.to(device)
    with torch.no_grad():
        denoiser(x, chain.diffusion.timestep_map[-1:].to(device), **kwargs)  # warm-up, then a fresh stage
        denoiser = levers.build(device)
        _sync(device)
        start = time.perf_counter()
        for t in reversed(range(chain.num_steps)):
            denoiser(x, chain.diffusion.timestep_map[t:t + 1].to(device), **kwargs)
        _sync(device)
    return (time.perf_counter() - start) / chain.num_steps


# -- the cases ---------------------------------------------------------------------------------------------------

def tiny_config(case: str) -> UNetConfig:
    return TINY if case == "base" else UNetConfig(**{**TINY.__dict__, "super_res": True})


def build(case: str, tiny: bool) -> tuple[torch.nn.Module, int]:
    preset, size, _, _ = CASES[case]
    if tiny:
        return build_model(tiny_config(case)).eval(), 32 if case == "base" else 64
    return random_unet(preset), size


def saved_costs(costs: dict) -> dict:
    """Per-call seconds as JSON: {variant: {"kind bROWS": seconds}}."""
    return {name: {f"{kind} b{rows}": seconds for (kind, rows), seconds in calls.items()}
            for name, calls in costs.items()}


def loaded_costs(saved: dict) -> dict:
    return {name: {(key.split()[0], int(key.split()[1][1:])): seconds for key, seconds in calls.items()}
            for name, calls in saved.items()}


def run_case(case: str, args, request: Request, fast: Precision, exact: Precision, saved: dict | None = None) -> dict:
    """One case's figures: its calls timed here, or with `saved` (per-call seconds from an earlier run of this
    script, `--save-costs`) priced again under other settings without timing anything."""
    _, _, guided, steps_field = CASES[case]
    steps = getattr(request, steps_field)
    upsampler = case == "upsample"
    if saved is None:
        model, size = build(case, args.tiny)
        config = model.config
    else:
        model, size = None, (32 if case == "base" else 64) if args.tiny else CASES[case][1]
        config = tiny_config(case) if args.tiny else UNET_PRESETS[CASES[case][0]]
    exact_request = request.with_(reuse_interval=1, upsample_reuse_interval=1, guidance_stop=0.0, guidance_start=1.0,
                                  upsample_context=0, upsample_strength=1.0)
    levers = {
        "exact": exact_request,
        "reuse": request.with_(guidance_stop=0.0, guidance_start=1.0),
        "window": request.with_(reuse_interval=1),
        "all": request,
    }
    region = None
    if upsampler and request.upsample_context > 0:
        region = typical_region(request.upsample_context, size, network_stride(SimpleNamespace(config=config)))
    region_variant = f"{fast.name} region" if region is not None else None
    calls = {name: stage_calls(config, lever, guided, steps, upsampler) for name, lever in levers.items()}
    rows = {r for sequence in calls.values() for _, r in sequence}
    if saved is not None:
        costs = loaded_costs(saved)
        if region_variant not in costs:  # saved without the region's calls: priced without it
            region, region_variant = None, None
    else:
        plain_model = copy.deepcopy(model).to(exact.device)
        prepare_model(model, fast)  # in place: the fast path's weights from here on
        variants = {"fp32": (plain_model, exact, False), fast.name: (model, fast, True)}
        if region_variant:
            variants[region_variant] = (model, fast, True, region)
        if args.int8:
            from glide_studio.models.quantize import quantize_convs

            quantized = quantize_convs(model)
            variants["int8"] = (quantized, fast, True)
        costs = call_costs(variants, size, rows, args.repeats)
        del plain_model, variants
    int8_costs = costs.get("int8")
    plain = priced(calls["exact"], costs["fp32"])
    figures = {"fp32 eager": plain, fast.name: priced(calls["exact"], costs[fast.name])}
    for name in ("reuse", "window"):
        if name == "window" and not guided:
            continue
        figures[f"{fast.name} + {name}"] = priced(calls[name], costs[fast.name])
    if region_variant:
        figures[f"{fast.name} + region"] = priced(calls["exact"], costs[region_variant])
    if int8_costs is not None:
        figures[f"{fast.name} + int8"] = priced(calls["exact"], int8_costs)
    all_costs = costs[region_variant] if region_variant else costs[fast.name]
    if int8_costs is not None and args.int8_in_all:
        all_costs = int8_costs
    all_name = f"{fast.name} + all" + (" (int8)" if all_costs is int8_costs else "")
    figures[all_name] = priced(calls["all"], all_costs)
    kinds = Counter(calls["all"])
    print(f"\n{case}: {config.image_size if args.tiny else CASES[case][0]} at {size} px, {steps} steps of "
          f"{request.sampler}; all levers' calls: " + ", ".join(f"{n} x {k} b{r}" for (k, r), n in kinds.items()))
    if upsampler:
        print(f"  upsampler from noise level {request.upsample_strength:g}; region at context "
              f"{request.upsample_context} px: {region_label(region, size)}")
    for (kind, r), seconds in sorted(costs[fast.name].items()):
        line = f"  call {kind:<8} b{r}: {fast.name} {seconds * 1e3:8.1f} ms"
        if (kind, r) in costs["fp32"]:
            line += f", fp32 {costs['fp32'][kind, r] * 1e3:8.1f} ms"
        if region_variant:
            line += f", {region_variant} {costs[region_variant][kind, r] * 1e3:8.1f} ms"
        if int8_costs is not None:
            line += f", int8 {int8_costs[kind, r] * 1e3:8.1f} ms"
        print(line)
    for name, seconds in figures.items():
        print(f"  {name:<28} {seconds:7.3f} s/step  {plain / seconds:5.2f}x")
    result = {"per_step": figures, "plain": plain, "all": figures[all_name], "steps": steps,
              "region": region_label(region, size) if upsampler else None,
              "reference_step": priced(calls["exact"], costs["fp32"]), "costs": saved_costs(costs)}
    if args.check and model is not None:
        measured = check_stage(model if all_costs is not int8_costs else quantized, fast, size, config, request,
                               guided, steps, upsampler, region)
        print(f"  {all_name:<28} {measured:7.3f} s/step measured over the real stage "
              f"(priced {figures[all_name]:.3f})")
    del model
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="base,upsample")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny networks: the code path, not the figures")
    parser.add_argument("--check", action="store_true", help="also run the all-levers stage for real")
    parser.add_argument("--int8", action="store_true", help="also time dynamic int8 convolutions")
    parser.add_argument("--int8-in-all", action="store_true", help="count int8 among all the levers")
    parser.add_argument("--reuse", type=int, default=Request.reuse_interval)
    parser.add_argument("--upsample-reuse", type=int, default=Request.upsample_reuse_interval)
    parser.add_argument("--reuse-stop", type=float, default=Request.reuse_stop)
    parser.add_argument("--reuse-start", type=float, default=Request.reuse_start)
    parser.add_argument("--upsample-reuse-stop", type=float, default=Request.upsample_reuse_stop)
    parser.add_argument("--guidance-stop", type=float, default=Request.guidance_stop)
    parser.add_argument("--upsample-context", type=int, default=Request.upsample_context)
    parser.add_argument("--upsample-strength", type=float, default=Request.upsample_strength)
    parser.add_argument("--steps", type=int, default=Request.steps)
    parser.add_argument("--upsample-steps", type=int, default=Request.upsample_steps)
    parser.add_argument("--sampler", default=Request.sampler)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--save-costs", help="write the per-call seconds to this JSON file")
    parser.add_argument("--costs", help="price the settings given from this --save-costs file, timing nothing")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (run on a machine with a GPU)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    fast = choose_precision(device, "fp16" if device.type == "cuda" else "bf16")
    exact = choose_precision(device, "fp32")
    request = Request(reuse_interval=args.reuse, upsample_reuse_interval=args.upsample_reuse,
                      reuse_stop=args.reuse_stop, reuse_start=args.reuse_start,
                      upsample_reuse_stop=args.upsample_reuse_stop,
                      guidance_stop=args.guidance_stop, steps=args.steps, upsample_context=args.upsample_context,
                      upsample_strength=args.upsample_strength,
                      upsample_steps=args.upsample_steps, sampler=args.sampler)
    print(f"levers: reuse every {reuse_interval_for(request)} steps (inpaint) at noise levels "
          f"{request.reuse_stop:g}..{request.reuse_start:g}, "
          f"upsampler every {request.upsample_reuse_interval} from {request.upsample_reuse_stop:g} up (shallow "
          f"branch of {SHALLOW_BLOCKS} block), CFG at noise levels {request.guidance_stop:g}.."
          f"{request.guidance_start:g}; {fast.describe()} vs "
          f"{exact.describe()}; threads {torch.get_num_threads()}; best of {args.repeats}")
    reset_peak_memory()
    saved = json.loads(open(args.costs).read()) if args.costs else {}
    if args.costs:
        print(f"per-call seconds from {args.costs} (timed then: {saved.get('timed_with', 'unknown')}; priced now, "
              "the threads above do not apply)")
    results = {case: run_case(case, args, request, fast, exact, saved.get(case) if args.costs else None)
               for case in args.cases.split(",")}
    if args.save_costs:
        with open(args.save_costs, "w") as out:
            timed_with = {"threads": torch.get_num_threads(), "repeats": args.repeats, "device": str(device),
                          "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            json.dump({"timed_with": timed_with, **{case: result["costs"] for case, result in results.items()}},
                      out, indent=1)
    if set(results) == set(CASES):
        ours = sum(results[case]["all"] * results[case]["steps"] for case in CASES)
        reference = sum(results[case]["reference_step"] * REFERENCE_FLOW[case] for case in CASES)
        print(f"\nflow: default inpaint with all levers ({request.steps} base + {request.upsample_steps} upsample "
              f"steps) {ours:.1f} s vs the reference's flow in fp32 eager (100 + 27 steps) {reference:.1f} s: "
              f"{reference / ours:.1f}x")
    peak, label = peak_memory_mb()
    if peak is not None:
        print(f"{label}: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
