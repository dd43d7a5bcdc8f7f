"""Evaluate the embedded demo models with the shapes world's oracle (a benchmark, not a test).

Held-out seeded tasks per mode, run through the real pipelines, judged by the oracle:
- inpaint: an object is removed, a box around its place is masked, and the caption names a new object;
- generate: a whole scene from its caption; each named object's colour must be present;
- sdedit: a rough blob of colour is painted where an object was; the caption names a shape;
- guidance: the inpaint tasks again at guidance scale 0;
- timing: one full inpaint (base + upsample) at the default settings;
- inpaint_ode, generate_ode, sdedit_ode: the same tasks with the deterministic DPM-Solver++(2M), to compare
  with the default stochastic one;
- seams_flat, seams_straddle, seams_cut: the mean |RGB error| of the background a full 256 px inpaint
  regenerates against the true one, with each stage's share (eval_seams.py); with `_exact`, the speed levers off;
- inpaint_both: the inpaint tasks with classifier-free and CLIP guidance at once, both at --guidance.

    python benchmarks/eval_demo.py --tasks 200 --json weights/eval_demo.json
    python benchmarks/eval_demo.py --tasks 25 --suites inpaint --base-run runs/demo-base   # a run's EMA
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import eval_clip  # beside this script
import eval_seams
import numpy as np
import torch

from glide_studio.pipelines import Mode, Request, run
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Guidance
from glide_studio.runs.drain import drain
from glide_studio.runs.errors import ModelUnavailableError
from glide_studio.runs.models import load_model_set
from glide_studio.shapes import oracle, world
from glide_studio.training.model_card import SHAPES_DRAWN

SEED_OFFSET = 1_000_000  # far from every seed the trainer draws from
# The shape verdict under the oracle's earlier nearest-colour silhouette, printed beside the current one so
# that figures from before the coverage rule stay comparable.
NEAREST_RULE_SHAPE = "shape (nearest-colour silhouette)"
# Where a suite judges shape, what the oracle saw per captioned kind is kept apart from the rates, under the key
# the model card reads, so that the card can show which shapes turn into which.
DRAWN = SHAPES_DRAWN


def _drain(models: ModelSet, request: Request) -> np.ndarray:
    return drain(run(models, request))[0]


def _removed_object_task(rng: np.random.Generator):
    """A 2-object scene with one object taken out: (picture without it, box where it was, removed, rest)."""
    while True:
        scene = world.sample_scene(rng, n_objects=2)
        if len(scene.objects) == 2:
            break
    index = int(rng.integers(2))
    removed, kept = scene.objects[index], scene.objects[1 - index]
    rows, cols = np.nonzero(world.object_mask(scene, index, 64))
    box = np.zeros((64, 64), dtype=np.uint8)
    box[max(0, rows.min() - 3):rows.max() + 4, max(0, cols.min() - 3):cols.max() + 4] = 1
    background_scene = world.Scene(scene.background, (kept,))
    return world.render(background_scene, 64), box, removed, kept, scene.background


def _new_object(rng, background, kept):
    colours = [c for c in world.OBJECT_COLOURS if c not in (background.colour, kept.colour)]
    return colours[rng.integers(len(colours))], world.KINDS[rng.integers(len(world.KINDS))]


def _tally_drawn(drawn: dict, asked: str, found) -> None:
    """Count what the oracle saw where `asked` was captioned ("nothing": no object in the region)."""
    drawn.setdefault(asked, Counter())[found.kind if found is not None else "nothing"] += 1


def eval_inpaint(models, tasks: range, guidance, steps, sampler=Request.sampler, fields=None):
    colour_ok = shape_ok = shape_nearest_ok = identical = 0
    drawn: dict = {}
    n = len(tasks)
    for k in tasks:
        rng = np.random.default_rng(SEED_OFFSET + k)
        image, box, _, kept, background = _removed_object_task(rng)
        colour, kind = _new_object(rng, background, kept)
        request = Request(mode=Mode.INPAINT, prompt=f"a {colour} {kind}", image=image, mask=box, steps=steps,
                          guidance_scale=guidance, seed=k, upsample_model=None, sampler=sampler, **(fields or {}))
        result = _drain(models, request)
        found = oracle.detect(result, box.astype(bool))
        _tally_drawn(drawn, kind, found)
        colour_ok += bool(found and found.colour == colour)
        shape_ok += bool(found and found.kind == kind)
        nearest = oracle.detect(result, box.astype(bool), silhouette="nearest")
        shape_nearest_ok += bool(nearest and nearest.kind == kind)
        identical += bool(np.array_equal(result[box == 0], image[box == 0]))
    return {"colour": colour_ok / n, "shape": shape_ok / n, "unmasked_identical": identical / n,
            NEAREST_RULE_SHAPE: shape_nearest_ok / n, DRAWN: drawn}


def _palette_fraction(image: np.ndarray, colour: str) -> int:
    names = list(world.PALETTE)
    palette = np.array([world.PALETTE[c] for c in names], dtype=np.float32)
    nearest = np.argmin(((image[:, :, None, :].astype(np.float32) - palette) ** 2).sum(-1), axis=-1)
    return int((nearest == names.index(colour)).sum())


def eval_generate(models, tasks: range, guidance, steps, sampler=Request.sampler, fields=None):
    named = right = 0
    for k in tasks:
        rng = np.random.default_rng(2 * SEED_OFFSET + k)
        scene = world.sample_scene(rng, n_objects=int(rng.integers(1, 3)))
        caption = " and ".join(f"a {o.colour} {o.kind}" for o in scene.objects)
        request = Request(mode=Mode.GENERATE, prompt=caption, steps=steps, guidance_scale=guidance, seed=k,
                          upsample_model=None, sampler=sampler, **(fields or {}))
        result = _drain(models, request)
        for obj in scene.objects:
            named += 1
            right += _palette_fraction(result, obj.colour) >= 25  # a small object covers ~150 px at 64 px
    return {"colour_per_object": right / named, "objects": named}


def _blob_sketch(rng, removed, size=64):
    """A rough, slightly irregular flat-colour blob where the removed object stood (an artist's dab)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx, r = removed.cy * size, removed.cx * size, removed.radius * size
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6.28)) + 0.06 * np.sin(5 * angle)
    return (np.hypot(yy - cy, xx - cx) <= r * wobble).astype(np.uint8)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the bounding boxes of two non-empty masks."""
    (ar, ac), (br, bc) = np.nonzero(a), np.nonzero(b)
    rows = max(0, min(ar.max(), br.max()) + 1 - max(ar.min(), br.min()))
    cols = max(0, min(ac.max(), bc.max()) + 1 - max(ac.min(), bc.min()))
    inter = rows * cols
    area_a = (np.ptp(ar) + 1) * (np.ptp(ac) + 1)
    area_b = (np.ptp(br) + 1) * (np.ptp(bc) + 1)
    return inter / (area_a + area_b - inter)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


@dataclass(frozen=True)
class SketchTask:
    """A held-out sketch task: a removed object's place sketched over as a blob of a new object's colour, and the
    request to draw it there (its steps, guidance and strength left at the defaults)."""

    request: Request
    colour: str
    kind: str
    blob: np.ndarray
    region: np.ndarray
    removed: object
    background: object


def sdedit_task(k: int) -> SketchTask:
    rng = np.random.default_rng(3 * SEED_OFFSET + k)
    image, _, removed, kept, background = _removed_object_task(rng)
    colour, kind = _new_object(rng, background, kept)
    blob = _blob_sketch(rng, removed)
    sketch = np.zeros((64, 64, 4), dtype=np.uint8)
    sketch[blob == 1] = (*world.COLOURS[colour], 255)
    region = np.zeros_like(blob)
    rows, cols = np.nonzero(blob)
    region[max(0, rows.min() - 3):rows.max() + 4, max(0, cols.min() - 3):cols.max() + 4] = 1
    request = Request(mode=Mode.SDEDIT, prompt=f"a {colour} {kind}", image=image, mask=region, sketch=sketch,
                      seed=k, upsample_model=None)
    return SketchTask(request, colour, kind, blob, region, removed, background)


def eval_sdedit(models, tasks: range, guidance, steps, strength, sampler=Request.sampler):
    """Place is judged two ways: the mask IoU of the object with the blob, which a right answer cannot
    always reach (a triangle of the blob's radius covers too little of it, so the ideal answer's own rate is
    printed beside it), and the IoU of their bounding boxes (where and how large), which it can."""
    counts = dict.fromkeys(("colour", "shape", "mask", "box", "all", "ideal", "nearest", "identical"), 0)
    drawn: dict = {}
    n = len(tasks)
    for k in tasks:
        task = sdedit_task(k)
        colour, kind, blob, region, removed, background, image = (
            task.colour, task.kind, task.blob, task.region, task.removed, task.background, task.request.image)
        request = task.request.with_(steps=steps, guidance_scale=guidance, strength=strength, sampler=sampler)
        result = _drain(models, request)
        ideal = world.object_mask(world.Scene(background, (replace(removed, kind=kind),)), 0, 64)
        counts["ideal"] += _mask_iou(ideal, blob) >= 0.6
        found = oracle.detect(result, region.astype(bool))
        _tally_drawn(drawn, kind, found)
        if found is not None:
            verdicts = {"colour": found.colour == colour, "shape": found.kind == kind,
                        "mask": _mask_iou(found.mask, blob) >= 0.6, "box": _box_iou(found.mask, blob) >= 0.6}
            verdicts["all"] = verdicts["colour"] and verdicts["shape"] and verdicts["box"]
            for name, right in verdicts.items():
                counts[name] += bool(right)
        nearest = oracle.detect(result, region.astype(bool), silhouette="nearest")
        counts["nearest"] += bool(nearest and nearest.kind == kind)
        counts["identical"] += bool(np.array_equal(result[region == 0], image[region == 0]))
    names = {"colour": "colour", "shape": "shape", "box": "box iou>=0.6", "all": "colour+shape+box iou>=0.6",
             "mask": "iou>=0.6", "ideal": "iou>=0.6 of the ideal answer", "identical": "unmasked_identical",
             "nearest": NEAREST_RULE_SHAPE}
    return {**{label: counts[key] / n for key, label in names.items()}, DRAWN: drawn}


def time_full_inpaint(models, repeats=3):
    rng = np.random.default_rng(4 * SEED_OFFSET)
    image, box, *_ = _removed_object_task(rng)
    picture = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))  # a 256 px picture
    mask = np.kron(box, np.ones((4, 4), dtype=np.uint8))
    request = Request(mode=Mode.INPAINT, prompt="a red star", image=picture, mask=mask)
    times = []
    for seed in range(repeats):
        started = time.perf_counter()
        _drain(models, request.with_(seed=seed))
        times.append(time.perf_counter() - started)
    return {"full_inpaint_seconds_median": statistics.median(times), "runs": times,
            "precision": models.precision.name, "threads": torch.get_num_threads(),
            "base_steps": request.steps, "upsample_steps": request.upsample_steps, "sampler": request.sampler}


def _tasks(args) -> range:
    return range(args.task_offset, args.task_offset + args.tasks)


COUNTS = ("objects", "tasks")  # how many a suite's rates are over (generate: per named object)


def merge(paths: list[str]) -> dict:
    """One result from evaluations of disjoint task ranges (run in parallel processes): each rate is the mean
    weighted by what it counts; the first file's settings and any timing are kept."""
    parts = [json.loads(Path(path).read_text()) for path in paths]
    merged = dict(parts[0])
    suites = {k for part in parts for k, v in part.items() if isinstance(v, dict) and k not in ("timing", DRAWN)}
    for suite in suites:
        having = [part for part in parts if suite in part]
        if suite in eval_seams.SUITES:  # medians and percentiles: recomputed from every task's figures
            merged[suite] = eval_seams.merge([part[suite] for part in having])
            continue
        weights = [part[suite].get("objects", part["tasks_per_mode"]) for part in having]
        rates = [m for m in having[0][suite] if m not in COUNTS]
        merged[suite] = {m: sum(p[suite][m] * w for p, w in zip(having, weights, strict=True)) / sum(weights)
                         for m in rates}
        merged[suite]["tasks"] = sum(part["tasks_per_mode"] for part in having)
        if "objects" in having[0][suite]:
            merged[suite]["objects"] = sum(weights)
    merged["tasks_per_mode"] = min(merged[suite]["tasks"] for suite in suites)
    timing = next((part["timing"] for part in parts if "timing" in part), None)
    if timing:
        merged["timing"] = timing
    drawn: dict = {}
    for part in parts:
        for suite, table in part.get(DRAWN, {}).items():
            for asked, seen_counts in table.items():
                drawn.setdefault(suite, {}).setdefault(asked, Counter()).update(seen_counts)
    if drawn:
        merged[DRAWN] = drawn
    return merged


SUITES = {
    "inpaint": lambda m, a: eval_inpaint(m, _tasks(a), a.guidance, a.steps),
    "inpaint_guidance_0": lambda m, a: eval_inpaint(m, _tasks(a), 0.0, a.steps),
    "inpaint_ancestral_100": lambda m, a: eval_inpaint(m, _tasks(a), a.guidance, 100, sampler="ancestral"),
    "inpaint_ode": lambda m, a: eval_inpaint(m, _tasks(a), a.guidance, a.steps, sampler="dpm++2m"),
    "generate": lambda m, a: eval_generate(m, _tasks(a), a.guidance, a.steps),
    "sdedit": lambda m, a: eval_sdedit(m, _tasks(a), a.guidance, a.steps, a.strength),
    "sdedit_ode": lambda m, a: eval_sdedit(m, _tasks(a), a.guidance, a.steps, a.strength, sampler="dpm++2m"),
    "generate_ode": lambda m, a: eval_generate(m, _tasks(a), a.guidance, a.steps, sampler="dpm++2m"),
    "timing": lambda m, a: time_full_inpaint(m),
    **{suite: lambda m, a, suite=suite: eval_seams.eval_seams(m, _tasks(a), suite, a.steps, a.guidance)
       for suite in eval_seams.SUITES},
    "clip_retrieval": lambda m, a: eval_clip.eval_retrieval(m, a.tasks),
    "inpaint_clip": lambda m, a: eval_inpaint(eval_clip.clip_model_set(m), _tasks(a), a.clip_scale, a.steps,
                                              fields={"guidance": Guidance.CLIP, **eval_clip.levers(a)}),
    "inpaint_both": lambda m, a: eval_inpaint(eval_clip.clip_model_set(m), _tasks(a), a.guidance, a.steps,
                                              fields={"guidance": Guidance.BOTH, **eval_clip.levers(a)}),
    "generate_clip": lambda m, a: eval_generate(eval_clip.clip_model_set(m), _tasks(a), a.clip_scale, a.steps,
                                                fields={"guidance": Guidance.CLIP, **eval_clip.levers(a)}),
    "inpaint_conditional": lambda m, a: eval_inpaint(m, _tasks(a), 1.0, a.steps, fields=eval_clip.levers(a)),
    "generate_guidance_0": lambda m, a: eval_generate(m, _tasks(a), 0.0, a.steps, fields=eval_clip.levers(a)),
    "missed_insertion": lambda m, a: eval_clip.eval_missed_insertion(m, _tasks(a), a.steps, _removed_object_task,
                                                                    _new_object, a.results_cache),
}


def run_network(run_dir: str, weights: str = "ema") -> torch.nn.Module:
    """A training run's network in progress (its state.pt: "ema" or the raw "model"), to follow a run before
    exporting it."""
    from glide_studio.models import build_model

    settings = json.loads((Path(run_dir) / "settings.json").read_text())
    model = build_model(settings["options"])
    model.load_state_dict(torch.load(Path(run_dir) / "state.pt", weights_only=True)[weights])
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--task-offset", type=int, default=0, help="first task's index (to split a run)")
    parser.add_argument("--merge", nargs="+", help="merge these result files (disjoint task ranges) into --json")
    parser.add_argument("--steps", type=int, default=Request.steps)
    parser.add_argument("--guidance", type=float, default=Request.guidance_scale)
    parser.add_argument("--strength", type=float, default=Request.strength)
    parser.add_argument("--clip-scale", type=float, default=3.0, help="guidance scale of the CLIP suites")
    parser.add_argument("--exact-path", action="store_true",
                        help="CLIP suites: the speed levers off (every step in full, guidance at every step)")
    parser.add_argument("--results-cache", help="missed_insertion: keep (and reuse) its inpainted results in this .npz")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--suites", default="inpaint,inpaint_guidance_0,generate,sdedit,timing",
                        help="comma list of: " + ", ".join(SUITES))
    parser.add_argument("--base-run", help="evaluate this training run's base model instead of the shipped one")
    parser.add_argument("--run-weights", default="ema", choices=("ema", "model"), help="with --base-run")
    args = parser.parse_args(argv)
    if args.merge:
        results = merge(args.merge)
        print(json.dumps(results, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        models = load_model_set(Request(), "cpu", args.precision)
    except ModelUnavailableError as error:
        print(f"demo weights unavailable: {error}", file=sys.stderr)
        return 1
    if args.base_run:  # a training run's network is no registry checkpoint: it stands in for the shipped base
        models = ModelSet.prepared(models.precision, run_network(args.base_run, args.run_weights), models.upsample)
    n = args.tasks
    results = {"tasks_per_mode": n, "steps": args.steps, "guidance_scale": args.guidance, "strength": args.strength,
               "precision": models.precision.name, "sampler": Request.sampler}
    started = time.perf_counter()
    for suite in args.suites.split(","):
        results[suite] = SUITES[suite](models, args)
        if DRAWN in results[suite]:
            results.setdefault(DRAWN, {})[suite] = results[suite].pop(DRAWN)
    results["eval_seconds"] = time.perf_counter() - started
    print(f"{'mode':<22}{'metric':<36}{'value':>8}")
    for suite in args.suites.split(","):
        if suite == "timing":
            print(f"{'timing':<22}{'full inpaint (s)':<36}{results['timing']['full_inpaint_seconds_median']:>8.2f}")
            continue
        if suite in eval_seams.SUITES:
            eval_seams.print_rows(suite, results[suite])
            continue
        for metric, value in results[suite].items():
            if metric not in COUNTS:
                print(f"{suite:<22}{metric:<36}{value:>8.1%}")
    for suite, table in results.get(DRAWN, {}).items():
        for asked, seen_counts in sorted(table.items()):
            seen = ", ".join(f"{kind} {count}" for kind, count in Counter(seen_counts).most_common())
            print(f"{suite:<22}{'asked ' + asked + ', drew':<36}  {seen}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
