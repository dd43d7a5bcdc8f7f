"""The embedded demo models as shipped in weights/: small enough, load strictly, and inpaint for real."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio import checkpoints
from glide_studio.pipelines import Mode, Request, run
from glide_studio.pipelines.models import ModelSet
from glide_studio.shapes import world

DEMO = ("demo-base-inpaint", "demo-upsample-inpaint")


@pytest.fixture(scope="module")
def demo_models():
    try:
        return ModelSet(base=checkpoints.load_network(DEMO[0]), upsample=checkpoints.load_network(DEMO[1]))
    except checkpoints.MissingWeightsError as error:
        pytest.fail(f"the demo weights must ship in weights/: {error}")


def test_shipped_files_fit_the_budget():
    folder = checkpoints.demo_weights_dir()
    total = sum((folder / f"{name}{suffix}").stat().st_size for name in DEMO for suffix in (".safetensors", ".json"))
    assert total <= 30 * 2**20, f"{total / 2**20:.1f} MiB"


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE])
def test_demo_models_run_every_mode_and_keep_unmasked_pixels(demo_models, mode):
    # A 256 px picture with one object; a new object is asked for in an empty corner. The colour the model
    # draws is measured by benchmarks/eval_demo.py, not asserted here (see weights/MODEL_CARD.md).
    scene = world.Scene(world.Background("white"), (world.ShapeObject("square", "green", "large", 0.3, 0.65, 0.18),))
    picture = world.render(scene, 256)
    mask = np.zeros((256, 256), np.uint8)
    mask[24:120, 136:232] = 1
    sketch = np.zeros((256, 256, 4), np.uint8)
    sketch[48:96, 160:208] = (215, 35, 35, 255)
    request = Request(mode=mode, prompt="a red circle", image=picture, mask=mask, sketch=sketch, seed=0, batch=2,
                      steps=6, upsample_steps=4)
    steps = list(run(demo_models, request))
    assert [s.index for s in steps] == list(range(steps[0].total)) and steps[-1].final is not None
    results = steps[-1].final
    assert results.shape == (2, 256, 256, 3)
    assert not np.array_equal(results[0], results[1])  # two candidates, two pictures
    if mode is not Mode.GENERATE:
        for result in results:
            assert np.array_equal(result[mask == 0], picture[mask == 0])
            assert not np.array_equal(result[mask == 1], picture[mask == 1])


def test_demo_model_draws_the_captioned_colour_where_asked(demo_models):
    # Four fixed tasks in the style of benchmarks/eval_demo.py: a box on an empty part of a plain scene, a caption
    # naming an object. The oracle must find the caption's colour in the box in at least three (the shipped model
    # is measured at 100 % on 200 such tasks; see weights/MODEL_CARD.md).
    from glide_studio.shapes import oracle

    tasks = [("red", "circle", "white"), ("blue", "square", "yellow"), ("green", "star", "white"),
             ("yellow", "triangle", "blue")]
    right = []
    for seed, (colour, kind, background) in enumerate(tasks):
        keep = world.ShapeObject("square", "purple" if background != "purple" else "orange", "small", 0.75, 0.25, 0.1)
        picture = world.render(world.Scene(world.Background(background), (keep,)), 64)
        box = np.zeros((64, 64), np.uint8)
        box[30:58, 8:36] = 1
        request = Request(mode=Mode.INPAINT, prompt=f"a {colour} {kind}", image=picture, mask=box, seed=seed,
                          steps=25, guidance_scale=3.0, upsample_model=None)
        result = list(run(demo_models, request))[-1].final[0]
        assert np.array_equal(result[box == 0], picture[box == 0])
        found = oracle.detect(result, box.astype(bool))
        right.append(found is not None and found.colour == colour)
    assert sum(right) >= 3, right


def test_demo_model_draws_the_kind_the_caption_names(demo_models):
    # One box, the same colour, each of the five kinds in turn: the oracle must read the named kind in at least
    # three of five (chance: ~6 %; the shipped model is measured at ~78 % on 200 tasks, see weights/MODEL_CARD.md).
    from glide_studio.shapes import oracle

    keep = world.ShapeObject("circle", "yellow", "small", 0.8, 0.8, 0.1)
    picture = world.render(world.Scene(world.Background("blue"), (keep,)), 64)
    box = np.zeros((64, 64), np.uint8)
    box[10:38, 10:38] = 1
    found_kinds = []
    for seed, kind in enumerate(world.KINDS):
        request = Request(mode=Mode.INPAINT, prompt=f"a white {kind}", image=picture, mask=box, seed=seed,
                          steps=25, guidance_scale=3.0, upsample_model=None)
        found = oracle.detect(list(run(demo_models, request))[-1].final[0], box.astype(bool))
        found_kinds.append(found.kind if found else None)
    assert sum(f == k for f, k in zip(found_kinds, world.KINDS, strict=True)) >= 3, found_kinds
