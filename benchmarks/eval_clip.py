"""The demo noised CLIP's suites of eval_demo.py: retrieval, CLIP guidance, and the missed-insertion flag.

- clip_retrieval: caption retrieval among 10 on held-out scenes noised to t = 0, 250, 500, 750;
- inpaint_clip / generate_clip: eval_demo's inpaint and generate tasks under CLIP guidance (no CFG, as GLIDE's
  CLIP-guided sampling), to set beside classifier-free guidance and guidance 0 (inpaint_conditional: the
  conditional model alone, which CLIP guidance steers; generate_guidance_0: the unconditional model);
- missed_insertion: eval_demo's inpaint tasks at guidance 0, 0.5, 1 and 3 in turn (low guidance misses often);
  each result is flagged by the scorer the app uses, and the flag is judged against the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glide_studio.pipelines import Mode, Request, run
from glide_studio.pipelines.request import Guidance
from glide_studio.runs.drain import drain
from glide_studio.runs.models import load_model_set, load_scorer
from glide_studio.shapes import oracle
from glide_studio.training.clip_eval import retrieval_accuracy

MISS_GUIDANCES = (0.0, 0.5, 1.0, 3.0)
CHOSEN_ON = 100


EXACT_PATH = {"reuse_interval": 1, "guidance_stop": 0.0, "guidance_start": 1.0}


def levers(args) -> dict:
    """The speed levers' fields of a suite's requests: off with --exact-path, else the app's defaults."""
    return dict(EXACT_PATH) if args.exact_path else {}


def clip_model_set(models):
    """The same networks as `models` with the demo model's noised CLIP added."""
    return load_model_set(Request(guidance=Guidance.CLIP, upsample_model=None), "cpu", models.precision.name)


def eval_retrieval(models, count: int) -> dict:
    with_clip = clip_model_set(models)
    found = retrieval_accuracy(with_clip.clip_image, with_clip.clip_text, count=count)
    return {f"top1_t{t}": accuracy for t, accuracy in found.items()} | {"tasks": count}


def _rates(flags: list[bool], misses: list[bool]) -> dict:
    flags_, misses_ = np.array(flags), np.array(misses)
    caught = int((flags_ & misses_).sum())
    return {"precision": caught / max(1, int(flags_.sum())), "recall": caught / max(1, int(misses_.sum())),
            "miss_rate": float(misses_.mean()), "flag_rate": float(flags_.mean())}


def eval_missed_insertion(models, tasks: range, steps: int, removed_object_task, new_object,
                          cache: str | None = None) -> dict:
    """Precision and recall of the flag against two oracle verdicts: no object at all in the region (a missed
    insertion proper), and no object of the caption's colour. `cache`: an .npz of the inpainted results by task,
    read where it has them and written with the rest (the runs do not depend on the CLIP being judged)."""
    scorer = load_scorer(Request(), "cpu")
    if scorer is None:
        raise RuntimeError("the demo noised CLIP is not in weights/")
    stored = dict(np.load(cache)) if cache and Path(cache).is_file() else {}
    flags, no_object, wrong_colour = [], [], []
    for k in tasks:
        rng = np.random.default_rng(1_000_000 + k)
        image, box, _, kept, background = removed_object_task(rng)
        colour, kind = new_object(rng, background, kept)
        request = Request(mode=Mode.INPAINT, prompt=f"a {colour} {kind}", image=image, mask=box, steps=steps,
                          guidance_scale=MISS_GUIDANCES[k % len(MISS_GUIDANCES)], seed=k, upsample_model=None)
        if str(k) not in stored:
            stored[str(k)] = drain(run(models, request))[0]
        result = stored[str(k)]
        found = oracle.detect(result, box.astype(bool))
        flags.append(scorer.score(request, result[None])[0].missed)
        no_object.append(found is None)
        wrong_colour.append(found is None or found.colour != colour)
    if cache:
        np.savez_compressed(cache, **stored)
    # The demo CLIP's floor (runs.models.DEMO_MISS_FLOOR) was chosen on tasks below CHOSEN_ON: the rest check it.
    checked = [index for index, k in enumerate(tasks) if k >= CHOSEN_ON]
    return ({f"no_object_{key}": value for key, value in _rates(flags, no_object).items()}
            | {f"not_its_colour_{key}": value for key, value in _rates(flags, wrong_colour).items()}
            | {f"not_its_colour_tasks_{CHOSEN_ON}+_{key}": value for key, value in _rates(
                [flags[i] for i in checked], [wrong_colour[i] for i in checked]).items()}
            | {"tasks": len(tasks)})
