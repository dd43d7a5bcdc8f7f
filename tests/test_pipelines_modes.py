"""Every mode end to end on the tiny reference networks: step stream, final results, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_helpers import BASE_SIZE, UPSAMPLE_SIZE, picture, request_for, tiny_model_set

from glide_studio.diffusion.samplers import SAMPLERS
from glide_studio.pipelines import PipelineError, run
from glide_studio.pipelines.request import EditBox, Mode

W = H = UPSAMPLE_SIZE


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir, clip=True)




EXPECTED_STAGES = {
    Mode.GENERATE: ["base"] * 4 + ["upsample"] * 3,
    Mode.INPAINT: ["base"] * 4 + ["upsample"] * 3,
    Mode.SDEDIT: ["base"] * 4 + ["upsample"] * 3,  # 4 steps from strength 0.75
    Mode.UPSAMPLE: ["upsample"] * 3,
}


@pytest.fixture(scope="module")
def first_runs(models):
    runs = {}

    def get(mode):
        if mode not in runs:
            runs[mode] = list(run(models, request_for(mode)))
        return runs[mode]

    return get


@pytest.mark.parametrize("mode", list(Mode))
def test_mode_yields_every_step_once_and_final_on_the_last(first_runs, mode):
    steps = first_runs(mode)
    total = len(EXPECTED_STAGES[mode])
    assert [s.stage for s in steps] == EXPECTED_STAGES[mode]
    assert [s.index for s in steps] == list(range(total))
    assert all(s.total == total for s in steps)
    assert all(s.final is None for s in steps[:-1])
    final = steps[-1].final
    assert final.dtype == np.uint8 and final.shape == (2, H, W, 3)
    for step in steps:
        size = BASE_SIZE if step.stage == "base" else UPSAMPLE_SIZE
        assert step.x_t.shape == step.pred_x0.shape == (2, 3, size, size)
        assert torch.isfinite(step.x_t).all() and step.pred_x0.abs().max() <= 1 + 1e-6
    stage_totals = {s.stage: s.stage_total for s in steps}
    assert all(s.stage_index < s.stage_total for s in steps) and sum(stage_totals.values()) == total


@pytest.mark.parametrize("mode", list(Mode))
def test_same_request_and_seed_give_the_same_pixels(models, first_runs, mode):
    first = first_runs(mode)[-1].final
    again = list(run(models, request_for(mode)))[-1].final
    other = list(run(models, request_for(mode, seed=8, batch=1)))[-1].final
    assert np.array_equal(first, again)
    assert not np.array_equal(first[:1], other)
    assert not np.array_equal(first[0], first[1]), "candidates of one batch should differ"


def test_every_sampler_runs_and_they_differ(models):
    finals = []
    for name in SAMPLERS:
        steps = list(run(models, request_for(Mode.GENERATE, sampler=name, upsample_model=None, batch=1)))
        assert len(steps) == 4 and steps[-1].final.shape == (1, BASE_SIZE, BASE_SIZE, 3)
        finals.append(steps[-1].final)
    assert len(finals) == 4
    assert all(not np.array_equal(a, b) for i, a in enumerate(finals) for b in finals[i + 1:])


def test_closing_after_a_few_steps_then_running_again(models, first_runs):
    request = request_for(Mode.INPAINT)
    expected = first_runs(Mode.INPAINT)[-1].final
    stream = run(models, request)
    taken = [next(stream) for _ in range(5)]  # into the upsample stage
    assert taken[-1].stage == "upsample"
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    assert np.array_equal(list(run(models, request))[-1].final, expected)


def test_nothing_runs_before_the_first_step_is_asked_for(models):
    calls = []
    base = models.base
    original = base.forward
    base.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        stream = run(models, request_for(Mode.GENERATE))
        assert calls == []
        next(stream)
        assert len(calls) == 1
        stream.close()
    finally:
        del base.forward


def test_generate_with_a_text_to_image_base_model(reference_dir):
    models = tiny_model_set(reference_dir, base="tiny-base", upsample="tiny-upsample")
    steps = list(run(models, request_for(Mode.GENERATE, batch=1)))
    assert steps[-1].final.shape == (1, UPSAMPLE_SIZE, UPSAMPLE_SIZE, 3)


def test_upsample_redraws_the_box_of_a_larger_picture_in_place_and_upscales_a_small_one(models):
    image = picture(100, 70, seed=4)
    box = EditBox(30, 12, 48, 48)
    final = list(run(models, request_for(Mode.UPSAMPLE, image=image, edit_box=box, batch=1)))[-1].final
    assert final.shape == (1, 70, 100, 3)  # the picture keeps its size: the box is never shrunk
    outside = np.ones((70, 100), bool)
    outside[12:60, 30:78] = False
    assert np.array_equal(final[0][outside], image[outside])
    assert not np.array_equal(final[0, 12:60, 30:78], image[12:60, 30:78])
    small = list(run(models, request_for(Mode.UPSAMPLE, batch=1)))[-1].final
    assert small.shape == (1, UPSAMPLE_SIZE, UPSAMPLE_SIZE, 3)  # a base-size picture is upscaled


def test_generate_into_the_edit_box_of_a_picture(models):
    image = picture(100, 70, seed=3)
    box = EditBox(20, 10, 40, 40)
    request = request_for(Mode.GENERATE, image=image, edit_box=box, upsample_model=None, batch=1)
    final = list(run(models, request))[-1].final
    assert final.shape == (1, 70, 100, 3)
    outside = np.ones((70, 100), bool)
    outside[10:50, 20:60] = False
    assert np.array_equal(final[:, outside], np.broadcast_to(image[outside], final[:, outside].shape))
    assert not np.array_equal(final[0, 10:50, 20:60], image[10:50, 20:60])


def test_clip_guidance(models):
    request = request_for(Mode.GENERATE, guidance="clip", guidance_scale=3.0, upsample_model=None, batch=1)
    guided = list(run(models, request))[-1].final
    unguided = list(run(models, request.with_(guidance_scale=0.0)))[-1].final
    assert guided.shape == (1, BASE_SIZE, BASE_SIZE, 3)
    assert not np.array_equal(guided, unguided)


def test_both_guidances_at_once_steer_the_result_unlike_either_alone(models):
    request = request_for(Mode.GENERATE, guidance="both", guidance_scale=3.0, upsample_model=None, batch=1)
    finals = {guidance: list(run(models, request.with_(guidance=guidance)))[-1].final
              for guidance in ("both", "cfg", "clip")}
    assert not np.array_equal(finals["both"], finals["cfg"])
    assert not np.array_equal(finals["both"], finals["clip"])
    # At scale 1 classifier-free guidance is the conditional model alone: what is left is CLIP guidance at 1.
    at_one = request.with_(guidance_scale=1.0)
    assert np.array_equal(list(run(models, at_one))[-1].final,
                          list(run(models, at_one.with_(guidance="clip")))[-1].final)


def test_clip_guidance_without_clip_models_is_a_clear_error(reference_dir):
    models = tiny_model_set(reference_dir, upsample=None)
    with pytest.raises(PipelineError, match="CLIP"):
        run(models, request_for(Mode.GENERATE, guidance="clip", upsample_model=None))


@pytest.mark.parametrize("changes,match", [
    (dict(sampler="euler"), "unknown sampler"),
    (dict(steps=0), "steps"),
    (dict(batch=0), "batch"),
    (dict(guidance="cfg+clip"), "guidance"),
    (dict(mask=None), "mask"),
    (dict(guidance_scale=float("nan")), "finite"),
])
def test_bad_requests_are_clear_errors(models, changes, match):
    with pytest.raises(PipelineError, match=match):
        run(models, request_for(Mode.INPAINT, **changes))


def test_upsampler_asked_for_but_not_loaded(reference_dir):
    models = tiny_model_set(reference_dir, upsample=None)
    with pytest.raises(PipelineError, match="upsampler"):
        run(models, request_for(Mode.GENERATE))
