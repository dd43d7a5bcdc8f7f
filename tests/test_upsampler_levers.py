"""The upsampler's two levers: drawing only around the mask (`upsample_context`) and starting from the upscaled
low-resolution picture part-way down the noise levels (`upsample_strength`). Off, each is the plain path bit for
bit; on, the network sees only what the lever says, the known pixels stay, and a paused run resumes exactly."""

from __future__ import annotations

import numpy as np
import pipeline_helpers as helpers
import pytest
import torch
import torch.nn.functional as F
from pipeline_helpers import UPSAMPLE_SIZE, tiny_model_set

from glide_studio.pipelines import run
from glide_studio.pipelines.chains import UPSAMPLE_TEMPERATURE, start_from_image
from glide_studio.pipelines.levers import CroppedNetwork, network_stride, region_to_draw
from glide_studio.pipelines.request import Mode, RequestError
from glide_studio.pipelines.stages import image_to_tensor, noise_for, text_kwargs


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


def _record_calls(monkeypatch, model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each call's input and timesteps from now on (the model is otherwise unchanged)."""
    calls, forward = [], model.forward

    def recording(x, timesteps, **kwargs):
        calls.append((x.clone(), timesteps.clone()))
        return forward(x, timesteps, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    return calls


def _corner_inpaint(**changes):
    """An inpaint whose mask is a small patch in the top-right corner of the 64 px picture."""
    side = UPSAMPLE_SIZE
    return helpers.request_for(Mode.INPAINT, mask=helpers.rect_mask(side, side, 44, 4, 54, 12), **changes)


# -- the region ----------------------------------------------------------------------------------------------

def test_the_region_is_the_masks_box_grown_by_the_context_and_snapped_to_the_stride():
    regenerate = torch.zeros(1, 1, 256, 256)
    regenerate[..., 100:140, 70:90] = 1
    assert region_to_draw(regenerate, 16, 32) == (slice(64, 160), slice(32, 128))
    assert region_to_draw(regenerate, 1, 32) == (slice(96, 160), slice(64, 96))
    assert region_to_draw(regenerate, 0, 32) is None  # 0: the whole picture
    assert region_to_draw(regenerate, 200, 32) is None  # reaching every edge: the whole picture again
    assert region_to_draw(None, 16, 32) is None  # nothing known
    assert region_to_draw(torch.zeros(256, 256), 16, 32) is None
    edge = torch.zeros(256, 256)
    edge[250:, :3] = 1
    assert region_to_draw(edge, 8, 32) == (slice(224, 256), slice(0, 32))


def test_the_stride_is_the_networks_deepest_level(models):
    assert network_stride(models.upsample) == 2 ** (len(models.upsample.config.resolved_channel_mult) - 1) == 32


def test_a_cropped_network_is_the_network_on_the_region_and_zeros_elsewhere(models):
    model, size = models.upsample, UPSAMPLE_SIZE
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, size, size, generator=generator)
    low_res = torch.randn(2, 3, size // 4, size // 4, generator=generator)
    known = torch.randn(2, 3, size, size, generator=generator)
    mask = torch.ones(2, 1, size, size)
    text = text_kwargs(model, "a red circle", 2, "cpu", guided=False)
    kwargs = dict(low_res=low_res, inpaint_image=known, inpaint_mask=mask, **text)
    region = (slice(0, 32), slice(32, 64))
    t = torch.tensor([700, 700])
    with torch.no_grad():
        cropped = CroppedNetwork(model, region)(x, t, **kwargs)
        upscaled = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        alone = model(x[..., :32, 32:], t, low_res=upscaled[..., :32, 32:], inpaint_image=known[..., :32, 32:],
                      inpaint_mask=mask[..., :32, 32:], **text)
    assert torch.equal(cropped[..., :32, 32:], alone)
    outside = torch.ones(size, size, dtype=torch.bool)
    outside[:32, 32:] = False
    assert cropped[..., outside].abs().max() == 0
    assert kwargs["low_res"] is low_res  # the caller's kwargs are left as they were


def test_an_upsampler_with_context_runs_only_around_the_mask_and_keeps_every_known_pixel(models, monkeypatch):
    request = _corner_inpaint(upsample_context=8)
    calls = _record_calls(monkeypatch, models.upsample)
    final = list(run(models, request))[-1].final
    assert {tuple(x.shape[-2:]) for x, _ in calls} == {(32, 32)}
    outside = request.mask == 0
    assert np.array_equal(final[:, outside], np.broadcast_to(request.image[outside], final[:, outside].shape))
    whole = list(run(models, request.with_(upsample_context=0)))[-1].final
    assert not np.array_equal(final, whole)  # the network saw less, so it drew a little differently


def test_context_that_reaches_every_edge_is_the_whole_box_bit_for_bit(models, monkeypatch):
    request = _corner_inpaint(upsample_context=UPSAMPLE_SIZE)
    calls = _record_calls(monkeypatch, models.upsample)
    final = list(run(models, request))[-1].final
    assert {tuple(x.shape[-2:]) for x, _ in calls} == {(UPSAMPLE_SIZE, UPSAMPLE_SIZE)}
    assert np.array_equal(final, list(run(models, request.with_(upsample_context=0)))[-1].final)


# -- the strength ------------------------------------------------------------------------------------------

def test_the_upsampler_starts_from_the_upscaled_picture_noised_to_its_strength(models, monkeypatch):
    request = helpers.request_for(Mode.UPSAMPLE, upsample_strength=0.4, upsample_steps=3)
    calls = _record_calls(monkeypatch, models.upsample)
    list(run(models, request))
    schedule, size = models.upsample.config.noise_schedule, UPSAMPLE_SIZE
    low_res = image_to_tensor(np.repeat(request.image[None], request.batch, axis=0), "cpu")
    upscaled = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
    chain = start_from_image(schedule, request.sampler, 3, 0.4, upscaled)
    expected = chain.x_T(noise_for(request), (request.batch, 3, size, size), "cpu")
    first_x, first_t = calls[0]
    assert len(calls) == chain.num_steps == 3
    assert int(first_t[0]) == int(chain.diffusion.timestep_map[-1]) <= 0.4 * 1000
    assert torch.equal(first_x, expected)


def test_strength_one_starts_from_noise_at_the_top(models, monkeypatch):
    request = helpers.request_for(Mode.UPSAMPLE, upsample_strength=1.0, upsample_steps=3)
    calls = _record_calls(monkeypatch, models.upsample)
    list(run(models, request))
    size = UPSAMPLE_SIZE
    first_x, first_t = calls[0]
    assert int(first_t[0]) > 900  # the top of the noise levels
    fresh = noise_for(request).draw((request.batch, 3, size, size), device="cpu") * UPSAMPLE_TEMPERATURE
    assert torch.equal(first_x, fresh)


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.GENERATE])
def test_with_both_levers_pausing_then_resuming_equals_never_pausing(models, mode):
    changes = dict(upsample_context=8, upsample_strength=0.5, steps=3, upsample_steps=3)
    request = _corner_inpaint(**changes) if mode == Mode.INPAINT else helpers.request_for(mode, **changes)
    whole = list(run(models, request))
    for k in (len(whole) - 3, len(whole) - 2):  # inside the upsample stage
        resumed = list(run(models, request, resume=whole[k].state.to("cpu")))
        assert [s.index for s in resumed] == [s.index for s in whole[k + 1:]]
        assert np.array_equal(resumed[-1].final, whole[-1].final), k


@pytest.mark.parametrize("changes", [{"upsample_context": -1}, {"upsample_strength": 0.0},
                                     {"upsample_strength": 1.5}])
def test_upsampler_lever_settings_out_of_range_are_clear_errors(models, changes):
    with pytest.raises(RequestError, match=next(iter(changes))):
        run(models, helpers.request_for(Mode.INPAINT, **changes))
