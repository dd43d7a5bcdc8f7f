"""GLIGEN grounding on tiny random GLIGEN components built here (a UNet with gated self-attention and its position
net, for generation and in GLIGEN's 9-channel inpainting layout), saved as a diffusers folder and loaded through the
user's path: the right sizes, unmasked pixels kept bit for bit, seeds repeated, boxes that change the picture where
and when they should, pause/resume, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gligen_helpers import save_gligen_folder
from sd_helpers import save_folder

from glide_studio.pipelines.request import EditBox, Mode, Region, Request, Scheduler
from glide_studio.runs.drain import drain
from glide_studio.sd import SDError, gligen, registry
from glide_studio.sd.errors import SDModelError
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run

WIDTH, HEIGHT = 50, 40
BALL = Region(12, 8, 30, 26, "a red ball")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gligen-models")
    return {"generation": save_gligen_folder(root / "gligen-generation", seed=1),
            "inpainting": save_gligen_folder(root / "gligen-inpainting", seed=2, in_channels=9)}


@pytest.fixture(scope="module")
def models(folders):
    return {kind: load_model(f"sd:{folder}", "cpu", "fp32") for kind, folder in folders.items()}


def picture():
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def mask():
    painted = np.zeros((HEIGHT, WIDTH), np.uint8)
    painted[4:34, 8:40] = 255
    return painted


def grounded(models, kind: str, mode: Mode, **changes) -> Request:
    inputs = dict(image=picture(), mask=mask()) if mode == Mode.INPAINT else {}
    fields = dict(mode=mode, base_model=models[kind].name, prompt="a garden", negative_prompt="blurry", steps=4,
                  seed=5, batch=2, guidance_scale=7.5, scheduler=Scheduler.EULER_A, regions=(BALL,),
                  grounding_share=1.0, **inputs)
    fields.update(changes)
    return Request(**fields)


def test_loading_detects_a_gligen_unet(models, folders, tmp_path):
    assert gligen.is_gligen(models["generation"].unet) and gligen.is_gligen(models["inpainting"].unet)
    assert models["inpainting"].inpainting and not models["generation"].inpainting
    plain = load_model(f"sd:{save_folder(tmp_path / 'plain')}", "cpu", "fp32")
    assert not gligen.is_gligen(plain.unet)

    # GLIGEN's text-and-image variant (boxes grounded on pictures) is refused by name when it loads.
    config = json.loads((folders["generation"] / "unet" / "config.json").read_text())
    assert config["attention_type"] == "gated"
    config["attention_type"] = "gated-text-image"
    with pytest.raises(SDModelError, match="text-and-image"):
        gligen.check_supported(type("Config", (), config)(), "sd:image-grounded")


def test_the_registry_lists_the_gligen_repositories():
    found = {model.name: model for model in registry.KNOWN_MODELS if model.gligen}
    assert found["gligen-generation"].repo_id == "masterful/gligen-1-4-generation-text-box"
    assert found["gligen-inpainting"].repo_id == "masterful/gligen-1-4-inpainting-text-box"
    assert found["gligen-inpainting"].inpainting and not found["gligen-generation"].inpainting
    assert all(model.size_gb > 1 and "OpenRAIL" in model.licence for model in found.values())
    assert not any(model.gligen for model in registry.KNOWN_MODELS if model.name.startswith("sd"))


@pytest.mark.parametrize("kind", ["generation", "inpainting"])
@pytest.mark.parametrize("mode", [Mode.GENERATE, Mode.INPAINT])
def test_grounded_runs_keep_sizes_pixels_and_seeds_and_follow_the_boxes(models, kind, mode):
    request = grounded(models, kind, mode)
    steps = list(run(models[kind], request))
    result = steps[-1].final
    assert len(steps) == 4 and all(step.pred_x0.shape[0] == 2 for step in steps)
    if mode == Mode.GENERATE:
        assert result.shape == (2, 32, 32, 3)  # the tiny model's own size
    else:
        assert result.shape == (2, HEIGHT, WIDTH, 3)
        kept = mask() == 0
        assert all(np.array_equal(candidate[kept], picture()[kept]) for candidate in result)
    assert not np.array_equal(result[0], result[1])
    assert np.array_equal(drain(run(models[kind], request)), result)

    without = drain(run(models[kind], request.with_(regions=())))
    moved = drain(run(models[kind], request.with_(regions=(Region(0, 0, 10, 10, "a red ball"),))))
    rephrased = drain(run(models[kind], request.with_(regions=(Region(12, 8, 30, 26, "a blue cube"),))))
    for other in (without, moved, rephrased):
        assert not np.array_equal(other, result)
    if mode == Mode.INPAINT:
        kept = mask() == 0
        assert all(np.array_equal(candidate[kept], picture()[kept]) for candidate in moved)


def test_grounding_reaches_only_the_first_share_of_the_steps(models):
    """Scheduled sampling: with a share of 0 no step is grounded (the same pixels as no regions); with 0.5 the
    first two steps of four are, so the run departs from the ungrounded one at its first step and the third and
    fourth steps' UNet calls see no grounding tokens."""
    request = grounded(models, "generation", Mode.GENERATE)
    without = drain(run(models["generation"], request.with_(regions=())))
    assert np.array_equal(drain(run(models["generation"], request.with_(grounding_share=0.0))), without)

    seen = []
    unet = models["generation"].unet
    handle = unet.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.append((kwargs.get("cross_attention_kwargs") or {}).get("gligen")),
        with_kwargs=True)
    try:
        half = drain(run(models["generation"], request.with_(grounding_share=0.5)))
    finally:
        handle.remove()
    assert [entry is not None for entry in seen] == [True, True, False, False]
    masks = seen[0]["masks"]
    assert masks.shape == (4, gligen.MAX_REGIONS)  # the guided pair of two candidates
    assert masks[:2].sum() == 0 and masks[2:, 0].tolist() == [1, 1] and masks[2:, 1:].sum() == 0
    assert torch.allclose(seen[0]["boxes"][2, 0], torch.tensor([12 / 32, 8 / 32, 30 / 32, 26 / 32]))
    assert not np.array_equal(half, without)


def test_boxes_are_placed_in_the_edit_box(models):
    boxed = gligen.model_boxes((Region(20, 10, 40, 30, "x"), Region(0, 0, 25, 5, "y")), type("Boxed", (), {
        "square": EditBox(10, 0, 40, 40)})(), 32)
    assert boxed[0] == (0.25, 0.25, 0.75, 0.75)
    assert boxed[1] == (0.0, 0.0, 0.375, 0.125)  # clipped to the square's left edge
    request = grounded(models, "inpainting", Mode.INPAINT, edit_box=EditBox(0, 0, 20, 20),
                       regions=(Region(30, 25, 45, 38, "a red ball"),))
    with pytest.raises(SDError, match="outside the edit box"):
        run(models["inpainting"], request)


def test_pause_and_resume_a_grounded_run_equals_never_pausing(models):
    request = grounded(models, "inpainting", Mode.INPAINT, grounding_share=0.5)
    whole = list(run(models["inpainting"], request))
    for paused_after in (0, 1, 2):
        resumed = list(run(models["inpainting"], request, resume=whole[paused_after].state))
        assert len(resumed) == 3 - paused_after
        assert np.array_equal(resumed[-1].final, whole[-1].final)
        assert torch.equal(resumed[0].pred_x0, whole[paused_after + 1].pred_x0)  # the preview of every step


def test_regions_are_refused_where_they_mean_nothing(models, tmp_path):
    plain = load_model(f"sd:{save_folder(tmp_path / 'plain')}", "cpu", "fp32")
    request = grounded(models, "generation", Mode.GENERATE, base_model=plain.name)
    with pytest.raises(SDError, match="not a GLIGEN model"):
        run(plain, request)
    assert drain(run(plain, request.with_(regions=()))).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="needs a phrase"):
        Region(1, 1, 5, 5, "  ")
    with pytest.raises(ValueError, match="x0 < x1"):
        Region(9, 1, 5, 5, "a ball")
    with pytest.raises(ValueError, match="at most 30"):
        grounded(models, "generation", Mode.GENERATE, regions=(BALL,) * 31).check()


def test_a_grounded_sketch_to_image_run_keeps_the_unmasked_pixels_and_follows_the_boxes(models):
    sketch = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    sketch[10:24, 14:28] = (230, 20, 20, 255)
    request = grounded(models, "generation", Mode.SDEDIT, image=picture(), mask=mask(), sketch=sketch, strength=0.7)
    result = drain(run(models["generation"], request))
    kept = mask() == 0
    assert result.shape == (2, HEIGHT, WIDTH, 3)
    assert all(np.array_equal(candidate[kept], picture()[kept]) for candidate in result)
    assert np.array_equal(drain(run(models["generation"], request)), result)
    assert not np.array_equal(drain(run(models["generation"], request.with_(regions=()))), result)


def test_the_automatic_edit_box_takes_in_the_boxes_as_well_as_the_mask():
    from glide_studio.pipelines.editbox import with_default_box

    picture_big = np.zeros((1200, 1600, 3), np.uint8)
    painted = np.zeros((1200, 1600), np.uint8)
    painted[100:200, 100:200] = 255
    far = Region(1100, 900, 1300, 1100, "a red ball")
    request = Request(mode=Mode.INPAINT, base_model="sd:some-gligen", prompt="a garden", image=picture_big,
                      mask=painted, regions=(far,))
    box = with_default_box(request).edit_box
    assert box.x <= 100 and box.y <= 100 and box.x + box.width >= 1300 and box.y + box.height >= 1100
    alone = with_default_box(request.with_(regions=())).edit_box
    assert alone.x + alone.width < 1100  # without boxes the box stays around the mask
