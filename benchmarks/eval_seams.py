"""The seam suite of `eval_demo.py`: does the background a run regenerates inside the mask match the background
around it?

Each task is a 256 px shapes-world picture with one object to remove; the mask is a box around it, and the
true answer is known exactly (the world renders the background without objects). Three kinds of scene:
- flat: a plain background; the box touches no other object;
- straddle: a striped background (the world's two tones of one colour, 16-32 levels apart, with sharp borders
  between them); the box covers both tones, at least a fifth of it each, and touches no other object;
- cut: a plain background; the box also covers part of another object, which stays in the picture.
The caption names the background's colour, as the trainer's scene captions do.

The measure is the mean |RGB error| (0-255) of the result against the true background over the masked pixels
that are background in the truth (the cut object's pixels, and 2 px around them, are left out) and in the
result: where the model drew an object of its own instead of the background (a missed removal, which no paste
back can mend), the oracle's silhouette of it is left out too, and the suite counts how often that happened
and also gives the error over every measured pixel. It prints the median and 90th percentile over the tasks
of each kind. Each run is also split into its stages,
so that a seam's cause shows: the 64 px base sample and the 256 px upsampled one, each against the truth at
its own size, inside the mask.
"""

from __future__ import annotations

import time

import numpy as np

from glide_studio.pipelines import Mode, Request, editbox, run
from glide_studio.pipelines.inpaint import upsampler_input
from glide_studio.pipelines.stages import keep_known_pixels, tensor_to_uint8
from glide_studio.shapes import oracle, world
from glide_studio.shapes.masks import dilate

SEAM_SEED_OFFSET = 5_000_000  # held out: far from the trainer's seeds and from eval_demo's other suites
SIZE = 256
KINDS = ("flat", "straddle", "cut")
OBJECT_GAP_PX = 8  # other objects keep this far from the box (flat, straddle)
MEASURE_MARGIN_PX = 2  # a cut object's anti-aliased rim, left out of the measure
EDGE_BAND_PX = 3  # where the upsampler's rim was (its error by distance from the mask's edge: 4.1, 2.9, 1.7, 1.3)


def _box_around(alpha: np.ndarray, margin: int) -> np.ndarray:
    rows, cols = np.nonzero(alpha > 0)
    box = np.zeros(alpha.shape, dtype=np.uint8)
    box[max(0, rows.min() - margin):rows.max() + 1 + margin, max(0, cols.min() - margin):cols.max() + 1 + margin] = 1
    return box


def _plain_scene(rng: np.random.Generator, n_objects: int, style: str) -> world.Scene:
    while True:
        scene = world.sample_scene(rng, n_objects=n_objects, styles=(style,))
        if len(scene.objects) == n_objects:
            return scene


def _covers_both_tones(background: np.ndarray, base_rgb, mask: np.ndarray, share: float = 0.2) -> bool:
    lighter = (background - np.asarray(base_rgb, np.float32)).mean(axis=-1)[mask == 1] > 0
    return share <= lighter.mean() <= 1 - share


def seam_task(kind: str, k: int):
    """Task `k` of a kind: (picture, mask, caption, true background as float 0..255, pixels measured)."""
    rng = np.random.default_rng(SEAM_SEED_OFFSET + KINDS.index(kind) * 100_000 + k)
    while True:
        scene = _plain_scene(rng, 2, "stripes" if kind == "straddle" else "plain")
        removed, kept = (0, 1) if rng.random() < 0.5 else (1, 0)
        removed_alpha = world.object_alpha(scene, removed, SIZE)
        kept_alpha = world.object_alpha(scene, kept, SIZE)
        mask = _box_around(removed_alpha, int(rng.integers(8, 24)))
        background = world.render_float(world.Scene(scene.background, ()), SIZE)
        if kind == "cut":
            # Grow the box towards the kept object until it covers a fifth to two thirds of it.
            rows, cols = np.nonzero(kept_alpha >= 0.5)
            pick = int(rng.integers(rows.size))
            box_rows, box_cols = np.nonzero(mask)
            grown = mask.copy()
            grown[min(rows[pick], box_rows.min()):max(rows[pick], box_rows.max()) + 1,
                  min(cols[pick], box_cols.min()):max(cols[pick], box_cols.max()) + 1] = 1
            if not 0.2 <= (kept_alpha * grown).sum() / kept_alpha.sum() <= 0.67:
                continue
            mask = grown
        elif dilate(kept_alpha > 0, OBJECT_GAP_PX)[mask == 1].any():
            continue
        if kind == "straddle" and not _covers_both_tones(background, scene.background.rgb, mask):
            continue
        picture = world.render_float(world.Scene(scene.background, (scene.objects[kept], scene.objects[removed])),
                                     SIZE)
        caption = f"a {scene.background.colour} background"
        measured = (mask == 1) & ~dilate(kept_alpha > 0, MEASURE_MARGIN_PX)
        return np.rint(picture).astype(np.uint8), mask, caption, background, measured


def _box_mean(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image.reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3))


def run_stages(models, request: Request) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One run's final picture, each stage's own sample (uint8, the model's size), and the final picture as it
    would be without harmonising (the same result pasted back with the ramp alone); and the paste back's time
    both ways, in milliseconds."""
    out = {}
    for step in run(models, request):
        if step.stage_index == step.stage_total - 1:
            out[step.stage] = tensor_to_uint8(step.x_t)[0]
        if step.final is not None:
            out["final"] = step.final[0]
    mask = editbox.region_to_regenerate(request)
    boxed = upsampler_input(models, request, mask)
    result = keep_known_pixels(out["upsample"][None], boxed.image, boxed.mask)[0]
    feather = max(editbox.default_feather_px(boxed, result.shape[0]), request.mask_feather)
    times = {}
    for name, harmonise in (("final, not harmonised", False), ("final", True)):
        started = time.perf_counter()
        pasted = editbox.paste_back(request.image, result, boxed, mask, feather_px=feather, harmonise=harmonise)
        times[f"paste back ms, {'harmonised' if harmonise else 'ramp only'}"] = 1000 * (time.perf_counter() - started)
        if harmonise and not np.array_equal(pasted, out["final"]):
            raise RuntimeError("the seam suite's paste back is not the pipeline's")
        out.setdefault(name, pasted)
    return out, times


def seam_errors(outputs: dict[str, np.ndarray], truth: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Mean |RGB error| of each output over the measured pixels (at a stage's own size: the truth and the
    measured pixels box-reduced to it)."""
    errors = {}
    for name, image in outputs.items():
        factor = truth.shape[0] // image.shape[0]
        where = _box_mean(measured[..., None].astype(np.float32), factor)[..., 0] >= 1.0
        target = _box_mean(truth, factor) if factor > 1 else truth
        errors[name] = float(np.abs(image.astype(np.float32) - target)[where].mean())
    return errors


def _edge_band_error(image: np.ndarray, truth: np.ndarray, mask: np.ndarray, measured: np.ndarray) -> float:
    band = measured & ~editbox.grow_mask(mask, -EDGE_BAND_PX)
    return float(np.abs(image.astype(np.float32) - truth)[band].mean())


def seam_task_errors(models, kind: str, k: int, base_steps: int, guidance: float, **fields) -> dict[str, float]:
    """One task's figures; `fields` (a suite's) may set the steps too, overriding `base_steps`."""
    picture, mask, caption, truth, measured = seam_task(kind, k)
    request = Request(mode=Mode.INPAINT, prompt=caption, image=picture, mask=mask, guidance_scale=guidance, seed=k,
                      **{"steps": base_steps, **fields})
    outputs, times = run_stages(models, request)
    drawn = _object_drawn(outputs["final"], mask, measured)
    background = measured & ~drawn
    if not background.any():
        background = measured
    errors = seam_errors(outputs, truth, background)
    errors["final, every measured pixel"] = seam_errors({"final": outputs["final"]}, truth, measured)["final"]
    errors["drew an object"] = float(drawn.any())
    errors[f"upsample, {EDGE_BAND_PX} px at the edge"] = _edge_band_error(outputs["upsample"], truth, mask, background)
    return {**errors, **times}


def _object_drawn(result: np.ndarray, mask: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Where the run drew an object of its own on the background it was asked for (the oracle's largest blob in
    the mask, grown by 3 px for its rim), or nothing: a missed removal, not a seam, measured apart."""
    found = oracle.detect(result, mask.astype(bool))
    if found is None or (found.mask & ~measured).sum() > found.mask.sum() / 2:  # the cut object, redrawn
        return np.zeros(mask.shape, dtype=bool)
    return dilate(found.mask, 3) & measured


def summary(per_task: list[dict[str, float]]) -> dict:
    """Median and 90th percentile of the final error over the tasks; the median of every other measure, and how
    often the run drew an object instead of the background (the measures every task has: runs of another version
    of this suite may have measured more)."""
    finals = np.asarray([errors["final"] for errors in per_task])
    out = {"median": float(np.median(finals)), "p90": float(np.percentile(finals, 90))}
    for name in [name for name in per_task[0] if all(name in errors for errors in per_task)]:
        if name == "drew an object":
            out["drew an object, share"] = float(np.mean([errors[name] for errors in per_task]))
        elif name != "final":
            out[f"{name}, median"] = float(np.median([errors[name] for errors in per_task]))
    every = [errors["final, every measured pixel"] for errors in per_task]
    out["final, every measured pixel, p90"] = float(np.percentile(every, 90))
    if all("final, not harmonised" in errors for errors in per_task):
        unharmonised = [errors["final, not harmonised"] for errors in per_task]
        out["final, not harmonised, p90"] = float(np.percentile(unharmonised, 90))
    return {**out, "tasks": len(per_task), "per_task": per_task}


def eval_seams(models, tasks: range, suite: str, steps: int, guidance: float) -> dict:
    kind, fields = SUITES[suite]
    return summary([seam_task_errors(models, kind, k, steps, guidance, **fields) for k in tasks])


EXACT_PATH = {"reuse_interval": 1, "upsample_reuse_interval": 1, "guidance_stop": 0.0, "guidance_start": 1.0,
              "upsample_context": 0, "upsample_strength": 1.0}
"""The speed levers off: both networks in full at every step, guided at every step (named, not left to the
defaults, which the speed levers' screen may change)."""
REFERENCE_STEPS = {"steps": 25, "upsample_steps": 15}
"""The step counts the `_exact` suites run at whatever the defaults are (the defaults were 25 + 15 until 63c56fa
made them 20 + 10), so that their figures stay comparable from one change to the next."""
SUITES = {**{f"seams_{kind}": (kind, {}) for kind in KINDS},
          **{f"seams_{kind}_exact": (kind, {**EXACT_PATH, **REFERENCE_STEPS}) for kind in KINDS}}
"""Each kind at the request's defaults, and with the speed levers off at the reference steps (`_exact`; these
ignore eval_demo's --steps)."""


def merge(parts: list[dict]) -> dict:
    """One suite's result from runs over disjoint task ranges."""
    return summary([errors for part in parts for errors in part["per_task"]])


def print_rows(suite: str, result: dict) -> None:
    for metric, value in result.items():
        if metric not in ("tasks", "per_task"):
            print(f"{suite:<22}{metric:<36}{value:>8.2f}")
