"""How close candidate i of a batch is to candidate i run alone (its own seed, `Request.alone(i)`), and what the
exact repeat costs against the alone one, on the shipped demo models on the CPU.

Candidate i draws all its noise from seed + i whatever the batch, so the two start alike; the networks' matrix
products block differently for another batch size, the last bits differ, and the sampler carries that on to a few
values of the picture. `repeat` of a candidate from a batch therefore runs the batch again (exact) rather than the
candidate alone (nearly the same). Figures, per mode:

    max level difference      largest |batch[i] - alone(i)| over all candidates, channels and pixels (0..255)
    differing values          share of values that differ at all
    batch / alone time        wall time of the batch run over one alone run, measured side by side

Run from the repository root:  PYTHONPATH=. python benchmarks/eval_candidate_seeds.py [--candidates 3] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--upsample-steps", type=int, default=3)
    args = parser.parse_args()

    from glide_studio import pipelines
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs.drain import drain
    from glide_studio.runs.models import load_model_set

    picture = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    mask[64:192, 64:192] = 255
    inputs = {Mode.GENERATE: {}, Mode.INPAINT: {"image": picture, "mask": mask}}
    for mode, pictures in inputs.items():
        request = Request(mode=mode, prompt="a red circle above a blue square", seed=11, batch=args.candidates,
                          steps=args.steps, upsample_steps=args.upsample_steps, **pictures)
        models = load_model_set(request, "cpu", "fp32")
        started = time.perf_counter()
        batch = drain(pipelines.run(models, request))
        batch_time = time.perf_counter() - started
        worst, differing, alone_times = 0, [], []
        for i in range(args.candidates):
            started = time.perf_counter()
            alone = drain(pipelines.run(models, request.alone(i)))[0]
            alone_times.append(time.perf_counter() - started)
            difference = np.abs(batch[i].astype(np.int16) - alone)
            worst = max(worst, int(difference.max()))
            differing.append(float((difference > 0).mean()))
        ratio = batch_time / (sum(alone_times) / len(alone_times))
        print(f"{mode.value:9s} {args.candidates} candidates: max level difference {worst}, differing values "
              f"{max(differing):.4%} (worst candidate), batch / alone time {ratio:.2f}x")


if __name__ == "__main__":
    main()
