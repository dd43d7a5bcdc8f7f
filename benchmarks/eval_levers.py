"""The speed levers' quality bound on the demo models: each configuration against the exact path, task by task.

The held-out tasks of eval_demo (inpaint: a new object in a removed one's place; generate: a captioned scene;
sdedit: a blob of colour turned into the captioned shape), run once exactly (levers off: reuse_interval 1,
guidance on every step, the given steps) and once per configuration, with the same seeds, judged by the
shapes world's oracle. Printed per configuration: each rate and its difference from the exact path in points,
the max and mean absolute pixel deviation from the exact path's result (uint8, inside the regenerated region
for inpaint and sdedit), and the model time per run against the exact path's.

    PYTHONPATH=. python benchmarks/eval_levers.py --tasks 50 \
        --config reuse2:reuse_interval=2 --config stop0.3:guidance_stop=0.3 \
        --config all:reuse_interval=2,guidance_stop=0.3 [--precision bf16] [--json out.json]

A configuration is `name:field=value,...` over Request fields (steps, sampler, upsample_steps too), applied
on top of the exact path; `--defaults` adds the shipped lever defaults as the configuration "defaults".
The suites `seams_flat`, `seams_straddle`, `seams_cut` run eval_seams' tasks (a full 256 px inpaint removing an
object; the mean |RGB error| of the fill against the true background, median and p90, and each stage's share):
what the upsampler's levers and steps do to a fill, which the 64 px oracle cannot see.
`--upsample N` also runs N full inpaints (base + upsampler at 256 px) per configuration and prints the
pixel deviation of the 256 px result, which the 64 px oracle cannot judge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import eval_demo
import eval_seams
import numpy as np
import torch
from eval_demo import SEED_OFFSET, _new_object, _palette_fraction, _removed_object_task

from glide_studio.pipelines import Mode, Request, run
from glide_studio.runs.drain import drain
from glide_studio.runs.errors import ModelUnavailableError
from glide_studio.runs.models import load_model_set
from glide_studio.shapes import oracle, world

EXACT = {"reuse_interval": 1, "reuse_stop": 0.0, "reuse_start": 1.0, "upsample_reuse_interval": 1,
         "upsample_reuse_stop": 0.0, "guidance_stop": 0.0, "guidance_start": 1.0, "upsample_context": 0,
         "upsample_strength": 1.0}
SEAM_SUITES = {f"seams_{kind}": kind for kind in eval_seams.KINDS}


def shipped_levers() -> dict:
    """The request's defaults of the lever fields and the step counts: the configuration "defaults"."""
    return {name: getattr(Request, name) for name in (*EXACT, "steps", "upsample_steps", "sampler")}


def parse_config(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    types = {spec.name: type(spec.default) for spec in dataclasses.fields(Request)}
    changes = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown Request field {key!r} in --config {text!r}")
        kind = types[key]
        changes[key] = value if kind not in (int, float) else kind(value)
    return name, changes


# -- the tasks: a request and how the oracle judges its result -------------------------------------------------

def inpaint_task(k: int):
    rng = np.random.default_rng(SEED_OFFSET + k)
    image, box, _, kept, background = _removed_object_task(rng)
    colour, kind = _new_object(rng, background, kept)
    request = Request(mode=Mode.INPAINT, prompt=f"a {colour} {kind}", image=image, mask=box, seed=k,
                      upsample_model=None)

    def judge(result):
        found = oracle.detect(result, box.astype(bool))
        return {"inpaint colour": bool(found and found.colour == colour),
                "inpaint shape": bool(found and found.kind == kind)}

    return request, judge, box.astype(bool)


def generate_task(k: int):
    rng = np.random.default_rng(2 * SEED_OFFSET + k)
    scene = world.sample_scene(rng, n_objects=int(rng.integers(1, 3)))
    caption = " and ".join(f"a {o.colour} {o.kind}" for o in scene.objects)
    request = Request(mode=Mode.GENERATE, prompt=caption, seed=k, upsample_model=None)

    def judge(result):  # per named object, as eval_demo counts it
        return {"generate colour/object": [_palette_fraction(result, o.colour) >= 25 for o in scene.objects]}

    return request, judge, None


def sdedit_task(k: int):
    task = eval_demo.sdedit_task(k)
    request, region, colour, kind = task.request, task.region, task.colour, task.kind

    def judge(result):
        found = oracle.detect(result, region.astype(bool))
        return {"sdedit colour": bool(found and found.colour == colour),
                "sdedit shape": bool(found and found.kind == kind)}

    return request, judge, region.astype(bool)


def inpaint256_task(k: int):
    """The inpaint task through both stages at the GUI's size (a 256 px picture, base + upsampler), judged on the
    result pooled back to 64 px: what the upsampler's levers do to the picture."""
    request, _, box = inpaint_task(k)
    colour, kind = request.prompt.split()[1:]
    picture = np.kron(request.image, np.ones((4, 4, 1), dtype=np.uint8))
    mask = np.kron(request.mask, np.ones((4, 4), dtype=np.uint8))
    request = request.with_(image=picture, mask=mask, upsample_model=Request.upsample_model)

    def judge(result):
        pooled = result.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        found = oracle.detect(pooled, box)
        return {"inpaint256 colour": bool(found and found.colour == colour),
                "inpaint256 shape": bool(found and found.kind == kind)}

    return request, judge, mask.astype(bool)


TASKS = {"inpaint": inpaint_task, "generate": generate_task, "sdedit": sdedit_task, "inpaint256": inpaint256_task}


class Tally:
    """Rates, pixel deviations from the exact path and model seconds of one configuration."""

    def __init__(self):
        self.hits: dict[str, list[bool]] = {}
        self.max_dev = 0
        self.dev_sum = 0.0
        self.dev_count = 0
        self.seconds = 0.0
        self.seams: dict[str, list[dict]] = {}

    def add(self, verdicts: dict, seconds: float) -> None:
        for metric, value in verdicts.items():
            self.hits.setdefault(metric, []).extend(value if isinstance(value, list) else [value])
        self.seconds += seconds

    def deviation(self, result: np.ndarray, exact: np.ndarray, region: np.ndarray | None) -> None:
        diff = np.abs(result.astype(np.int16) - exact.astype(np.int16))
        if region is not None:
            diff = diff[:, region] if diff.ndim == 4 else diff[region]
        self.max_dev = max(self.max_dev, int(diff.max()))
        self.dev_sum += float(diff.mean())
        self.dev_count += 1

    def rates(self) -> dict[str, float]:
        return {metric: sum(values) / len(values) for metric, values in self.hits.items()}


def timed_run(models, request):
    started = time.perf_counter()
    result = drain(run(models, request))
    return result[0], time.perf_counter() - started


def evaluate(models, configs: dict[str, dict], suites: list[str], tasks: range, base: dict,
             networks: dict | None = None, after_task: Callable[[dict, int], None] | None = None) -> dict:
    """Task by task, every suite for each (so that a run stopped early still weighs the suites alike);
    `after_task(tallies, done)` after each. `networks`: the ModelSet a configuration runs on, where it is not
    `models` (the int8 copy)."""
    networks = networks or {}
    tallies = {name: Tally() for name in ["exact", *configs]}
    for done, k in enumerate(tasks, start=1):
        for suite in suites:
            if suite in SEAM_SUITES:
                seam_runs(models, tallies, configs, SEAM_SUITES[suite], k, base, networks)
                continue
            request, judge, region = TASKS[suite](k)
            exact_request = request.with_(**{**base, **EXACT})
            exact, seconds = timed_run(models, exact_request)
            tallies["exact"].add(judge(exact), seconds)
            for name, changes in configs.items():
                result, seconds = timed_run(networks.get(name, models), exact_request.with_(**changes))
                tallies[name].add(judge(result), seconds)
                tallies[name].deviation(result, exact, region)
        if after_task is not None:
            after_task(tallies, done)
    return tallies


def seam_runs(models, tallies: dict, configs: dict[str, dict], kind: str, k: int, base: dict,
              networks: dict) -> None:
    """One seam task of `kind` (eval_seams), exact and per configuration, each run's errors kept per kind."""
    for name, changes in [("exact", {}), *configs.items()]:
        fields = {**base, **EXACT, **changes}
        steps = fields.pop("steps", Request.steps)
        started = time.perf_counter()
        errors = eval_seams.seam_task_errors(networks.get(name, models), kind, k, steps, Request.guidance_scale,
                                             **fields)
        tallies[name].seconds += time.perf_counter() - started
        tallies[name].seams.setdefault(kind, []).append(errors)


SEAM_FIGURES = ("median", "p90", "upsample, median", "base, median", "final, every measured pixel, median",
                "drew an object, share")


def upsample_deviation(models, configs: dict[str, dict], count: int, base: dict, networks: dict) -> dict:
    """Full inpaints at the GUI's size (256 px picture, base + upsampler): the deviation of the 256 px result
    inside the mask, and the model time, per configuration against the exact path."""
    figures = {}
    exact_seconds = 0.0
    results = {}
    for k in range(count):
        request, _, region = inpaint_task(10_000 + k)
        picture = np.kron(request.image, np.ones((4, 4, 1), dtype=np.uint8))
        mask = np.kron(request.mask, np.ones((4, 4), dtype=np.uint8))
        full = request.with_(image=picture, mask=mask, upsample_model=Request.upsample_model, **{**base, **EXACT})
        exact, seconds = timed_run(models, full)
        exact_seconds += seconds
        for name, changes in configs.items():
            result, seconds = timed_run(networks.get(name, models), full.with_(**changes))
            tally = results.setdefault(name, Tally())
            tally.seconds += seconds
            tally.deviation(result, exact, mask.astype(bool))
    for name, tally in results.items():
        figures[name] = {"max_dev": tally.max_dev, "mean_dev": tally.dev_sum / max(tally.dev_count, 1),
                         "time_ratio": exact_seconds / tally.seconds}
    return figures


def demo_timing(models, repeats: int) -> dict:
    """Model time of the GUI's default full inpaint (a 256 px picture, base + upsampler, one candidate) and of
    the live-painting settings (app.live: 5 DPM-Solver++(2M) base steps, one candidate), exact against the
    shipped lever defaults, medians of `repeats` runs each, alternating."""
    from glide_studio.app.live import LIVE_SAMPLER, LIVE_STEPS

    request, _, _ = inpaint_task(20_000)
    picture = np.kron(request.image, np.ones((4, 4, 1), dtype=np.uint8))
    mask = np.kron(request.mask, np.ones((4, 4), dtype=np.uint8))
    full = Request(mode=Mode.INPAINT, prompt=request.prompt, image=picture, mask=mask)
    live = full.with_(steps=LIVE_STEPS, sampler=LIVE_SAMPLER, upsample_model=None)
    figures = {}
    for name, shipped in (("full inpaint", full), ("live update", live)):
        times: dict[str, list[float]] = {"exact": [], "defaults": []}
        for seed in range(repeats):
            for label, changes in (("exact", EXACT), ("defaults", {})):
                times[label].append(timed_run(models, shipped.with_(seed=seed, **changes))[1])
        figures[name] = {label: float(np.median(values)) for label, values in times.items()}
    return figures


def summary(tallies: dict, configs: dict) -> dict:
    exact = tallies["exact"].rates()
    figures = {}
    for name, tally in tallies.items():
        entry = {"changes": configs.get(name, EXACT), "rates": tally.rates(),
                 "points_vs_exact": {metric: 100 * (rate - exact[metric]) for metric, rate in tally.rates().items()}}
        if name != "exact" and tally.dev_count:
            entry.update(max_dev=tally.max_dev, mean_dev=tally.dev_sum / tally.dev_count)
        if name != "exact" and tally.seconds:
            entry.update(time_ratio=tallies["exact"].seconds / tally.seconds, seconds=tally.seconds)
        for kind, per_task in tally.seams.items():
            figures_of_kind = eval_seams.summary(per_task)
            entry.setdefault("seams", {})[kind] = {key: figures_of_kind[key] for key in (*SEAM_FIGURES, "tasks")}
        figures[name] = entry
    return figures


def print_summary(figures: dict) -> None:
    print(f"{'config':<14}{'metric':<24}{'rate':>7}{'vs exact':>10}")
    for name, entry in figures.items():
        for metric, rate in entry["rates"].items():
            print(f"{name:<14}{metric:<24}{rate:>7.1%}{entry['points_vs_exact'][metric]:>+9.1f}p")
        if "max_dev" in entry:
            print(f"{name:<14}{'pixel deviation':<24}  max {entry['max_dev']}, mean {entry['mean_dev']:.2f} (uint8)")
        for kind, seams in entry.get("seams", {}).items():
            shown = ", ".join(f"{key} {seams[key]:.2f}" for key in SEAM_FIGURES)
            print(f"{name:<14}{'seams ' + kind:<24}  {shown} ({seams['tasks']} tasks)")
        if "time_ratio" in entry:
            print(f"{name:<14}{'model time':<24}  {entry['time_ratio']:.2f}x faster than exact")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--task-offset", type=int, default=0)
    parser.add_argument("--suites", default="inpaint,generate,sdedit")
    parser.add_argument("--config", action="append", default=[], help="name:field=value,... (repeatable)")
    parser.add_argument("--defaults", action="store_true", help="also judge the shipped defaults ('defaults')")
    parser.add_argument("--base", default="", help="field=value,... applied to every run, the exact one too")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--upsample", type=int, default=0, help="full 256 px inpaints per configuration")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--int8", action="store_true",
                        help="also judge the networks with dynamic int8 convolutions (config 'int8', levers off)")
    parser.add_argument("--timing", type=int, default=0,
                        help="also time the GUI's full inpaint and a live update, exact vs defaults, N runs each")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = dict(parse_config(text) for text in args.config)
    if args.defaults:
        configs["defaults"] = shipped_levers()
    base = parse_config("base:" + args.base)[1]
    try:
        models = load_model_set(Request(), "cpu", args.precision)
    except ModelUnavailableError as error:
        print(f"demo weights unavailable: {error}", file=sys.stderr)
        return 1
    networks = {}
    if args.int8:
        from glide_studio.models.quantize import quantize_convs

        configs["int8"] = {}
        networks["int8"] = dataclasses.replace(models, base=quantize_convs(models.base),
                                               upsample=quantize_convs(models.upsample))
    tasks = range(args.task_offset, args.task_offset + args.tasks)
    started = time.perf_counter()
    suites = [suite for suite in args.suites.split(",") if suite]
    report: dict = {"task_offset": args.task_offset, "precision": models.precision.name, "base": base,
                    "suites": suites, "configs": {}}

    def record(tallies: dict, done: int) -> None:
        report["tasks_per_suite"] = done
        report["configs"] = summary(tallies, configs)
        report["eval_seconds"] = time.perf_counter() - started
        if args.json:  # after every task: a run stopped early keeps what it measured
            Path(args.json).write_text(json.dumps(report, indent=1))

    started = time.perf_counter()
    tallies = evaluate(models, configs, suites, tasks, base, networks, record)
    print(f"{report.get('tasks_per_suite', 0)} tasks per suite (offset {args.task_offset}), precision "
          f"{models.precision.name}, base {base or 'defaults'}; eval {time.perf_counter() - started:.0f} s")
    print_summary(summary(tallies, configs))
    if args.upsample:
        figures = upsample_deviation(models, configs, args.upsample, base, networks)
        report["upsample"] = figures
        for name, values in figures.items():
            print(f"{name:<14}{'256 px full inpaint':<24}  max dev {values['max_dev']}, mean "
                  f"{values['mean_dev']:.2f}, {values['time_ratio']:.2f}x faster ({args.upsample} runs)")
    if args.timing:
        report["timing"] = demo_timing(models, args.timing)
        for name, values in report["timing"].items():
            print(f"{'timing':<14}{name:<24}  exact {values['exact']:.2f} s, defaults {values['defaults']:.2f} s "
                  f"({values['exact'] / values['defaults']:.2f}x; medians of {args.timing}, threads "
                  f"{torch.get_num_threads()})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
