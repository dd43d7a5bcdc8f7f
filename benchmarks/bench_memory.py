"""Peak memory of a full-size run: GLIDE's base-inpaint and upsample-inpaint with random weights in the official
configs, in the app's CPU precision (auto), an inpaint of a 256 px picture at the default settings (levers on),
through the same pipeline every front runs. Prints the resident set: before the networks, with them loaded, and
the peak of each stage (Linux VmHWM, reset between phases), with the networks' own bytes beside it.

A stage's peak is reached at its first steps (a step's buffers are freed before the next; nothing grows with the
step count), so the default runs 3 base and 2 upsample steps; pass --steps 25 --upsample-steps 15 for all of them.

    PYTHONPATH=. nice -n 5 python benchmarks/bench_memory.py [--candidates 1] [--steps 3] [--upsample-steps 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_precision import random_unet
from bench_speed import _proc_status_mb, peak_memory_mb, reset_peak_memory

from glide_studio.models import choose_precision
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.drain import drain
from glide_studio.runs.streams import run


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MB"


def network_mb(*networks) -> float:
    return sum(tensor.numel() * tensor.element_size() for network in networks
               for tensor in [*network.parameters(), *network.buffers()]) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--upsample-steps", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    start_rss = _proc_status_mb("VmRSS")
    precision = choose_precision("cpu", args.precision)
    models = ModelSet.prepared(precision, random_unet("base-inpaint"), random_unet("upsample-inpaint", seed=1))
    loaded_rss = _proc_status_mb("VmRSS")
    weights = network_mb(models.base, models.upsample)
    print(f"full-size base-inpaint + upsample-inpaint, random weights, {precision.describe()}, threads "
          f"{torch.get_num_threads()}; {args.candidates} candidate(s), {args.steps} base + {args.upsample_steps} "
          f"upsample steps at the default levers")
    print(f"resident before the networks {mb(start_rss)}; with them {mb(loaded_rss)} (their tensors {mb(weights)})")
    picture = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    mask[64:192, 64:192] = 255
    request = Request(mode=Mode.INPAINT, prompt="a red circle", image=picture, mask=mask, batch=args.candidates,
                      base_model="base-inpaint", upsample_model="upsample-inpaint", steps=args.steps,
                      upsample_steps=args.upsample_steps)
    peaks: dict[str, float | None] = {}
    began = time.perf_counter()
    resettable = reset_peak_memory()

    def on_step(step) -> None:
        print(f"  {step.stage} step {step.stage_index + 1}/{step.stage_total} at {time.perf_counter() - began:.0f} s",
              flush=True)
        if step.stage_index + 1 == step.stage_total:  # the stage's last step: its peak, then the next one's
            peaks[step.stage] = peak_memory_mb()[0]
            reset_peak_memory()

    drain(run(models, request), on_step)
    for name, peak in peaks.items():
        print(f"peak resident during the {name} stage: {mb(peak)}")
    if not resettable:
        print("(this kernel does not reset VmHWM: each figure is the process's peak so far)")
    print(f"peak of the run: {mb(max(value for value in peaks.values() if value is not None))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
