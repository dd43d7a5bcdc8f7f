"""Stable unCLIP variations on a tiny random unCLIP folder built here (a UNet with a projection class embedding,
its CLIP image encoder, image normalizer and embedding noising schedule), loaded through the user's path: N
variations of the edit box, each its own seed, pasted back through the box with the rest of the picture untouched,
conditioned on the box's picture, previews every step and cancel within a step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sd_image_helpers import save_unclip_folder

from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.runs.drain import drain
from glide_studio.runs.models import load_sd_model_set
from glide_studio.sd import SDError, registry
from glide_studio.sd.pipeline import run

WIDTH, HEIGHT = 50, 40
BOX = EditBox(12, 6, 30, 30)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_unclip_folder(tmp_path_factory.mktemp("sd-unclip") / "tiny-unclip", seed=1)


@pytest.fixture(scope="module")
def models(folder):
    return load_sd_model_set(variations(f"sd:{folder}"), "cpu", "fp32", loaded={})


def picture():
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def variations(name: str, **changes) -> Request:
    fields = dict(mode=Mode.GENERATE, base_model=name, image=picture(), edit_box=BOX, prompt="", steps=3, seed=20,
                  batch=3, guidance_scale=5.0, scheduler="Euler a")
    fields.update(changes)
    return Request(**fields)


def test_variations_of_the_box_differ_fill_only_the_box_and_repeat(models):
    steps = []
    request = variations(models.name)
    results = drain(run(models, request), steps.append)
    assert results.shape == (3, HEIGHT, WIDTH, 3)
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width] = False
    assert np.array_equal(results[:, outside], np.broadcast_to(picture()[outside], results[:, outside].shape))
    assert len({results[index].tobytes() for index in range(3)}) == 3  # every variation its own
    assert [step.index for step in steps] == [0, 1, 2] and all(step.pred_x0.shape[0] == 3 for step in steps)
    assert np.array_equal(drain(run(models, request)), results)
    # each candidate is seed + i: the second one run alone is the same picture
    assert np.array_equal(drain(run(models, request.alone(1)))[0], results[1])


def test_the_box_picture_conditions_the_variations(models):
    request = variations(models.name, batch=1)
    other = picture()
    other[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width] //= 3
    first, second = drain(run(models, request)), drain(run(models, request.with_(image=other)))
    inside = (slice(BOX.y, BOX.y + BOX.height), slice(BOX.x, BOX.x + BOX.width))
    assert not np.array_equal(first[0][inside], second[0][inside])


def test_variations_need_a_picture_and_cancel_within_a_step(models):
    with pytest.raises(SDError, match="variations of a picture"):
        drain(run(models, variations(models.name, image=None, edit_box=None)))
    calls = []
    handle = models.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        stream = run(models, variations(models.name, steps=8))
        next(stream)
        stream.close()
    finally:
        handle.remove()
    assert len(calls) == 1


def test_the_model_says_it_makes_variations_and_the_registry_knows_stable_unclip(folder, tmp_path):
    assert registry.makes_variations(f"sd:{folder}")
    assert not registry.makes_variations(f"sd:{tmp_path}")
    assert registry.makes_variations("sd:sd21-unclip-small") and not registry.makes_variations("sd:sd15-inpainting")
    known = registry.known("sd21-unclip-small")
    assert known.repo_id == "stabilityai/stable-diffusion-2-1-unclip-small" and "RAIL" in known.licence
    for part in ("image_encoder/model.safetensors", "image_normalizer/diffusion_pytorch_model.safetensors",
                 "image_noising_scheduler/scheduler_config.json"):
        assert part in registry.FILE_PATTERNS


def test_variations_of_this_box_in_the_window(qtbot, tmp_path, monkeypatch, folder, user_data_dir):
    from sd_helpers import save_folder
    from window_helpers import open_window

    from glide_studio.app.engine import PipelineEngine
    from glide_studio.app.starter import starter_scene
    from glide_studio.sd.registry import MODELS_PATH_VARIABLE

    models_dir = folder.parent
    save_folder(models_dir / "plain-inpainter", seed=2)
    monkeypatch.setenv(MODELS_PATH_VARIABLE, str(models_dir))
    window = open_window(qtbot, tmp_path, PipelineEngine(precision="fp32"), starter_scene(64))
    controls, controller = window.controls, window.controller
    action = window.image_prompts.variations_action
    assert action in window.findChildren(type(action)) and not action.isEnabled()  # the demo model cannot
    controls.model.setCurrentIndex(controls.model.findData(f"sd:{models_dir / 'plain-inpainter'}"))
    assert not action.isEnabled()  # nor can an inpainting model
    controls.model.setCurrentIndex(controls.model.findData(f"sd:{folder}"))
    assert action.isEnabled()
    controls.random_seed.setChecked(False)
    controls.fields.widgets["steps"].setValue(3)
    controls.fields.widgets["batch"].setValue(2)
    controller.document.set_edit_box(EditBox(16, 8, 40, 40))
    before = controller.document.picture.copy()
    steps = []
    controller.run_step.connect(lambda progress: steps.append(progress.index))
    with qtbot.waitSignal(controller.run_finished, timeout=120_000) as finished:
        action.trigger()
    result = finished.args[0]
    assert result.record.request.mode == Mode.GENERATE and result.record.request.edit_box == EditBox(16, 8, 40, 40)
    assert controls.run_settings().request.mode == Mode.INPAINT  # the mode setting stays as it was
    assert steps[-3:] == [0, 1, 2]
    images = result.images
    assert images.shape == (2, 64, 64, 3) and not np.array_equal(images[0], images[1])
    outside = np.ones((64, 64), bool)
    outside[8:48, 16:56] = False
    assert all(np.array_equal(image[outside], before[outside]) for image in images)
    assert controller.candidates is not None and len(controller.candidates) == 2
    window.close()


def test_a_variation_paused_and_resumed_is_the_uninterrupted_one(models):
    request = variations(models.name, steps=4, batch=2)
    steps = []
    whole = drain(run(models, request), steps.append)
    for paused in (0, 2):
        assert np.array_equal(drain(run(models, request, resume=steps[paused].state)), whole)


def test_bf16_variations_fill_only_the_box(folder):
    low = load_sd_model_set(variations(f"sd:{folder}"), "cpu", "bf16", loaded={})
    assert low.unclip.image_encoder.dtype == low.unet.dtype == torch.bfloat16
    results = drain(run(low, variations(low.name, batch=2)))
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width] = False
    assert np.array_equal(results[:, outside], np.broadcast_to(picture()[outside], results[:, outside].shape))
