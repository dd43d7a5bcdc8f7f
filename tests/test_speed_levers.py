"""Speed levers are wrappers: feature reuse (the UNet split at a skip connection, deep features reused across
steps), the guidance interval (CFG only inside a window of noise levels). With the levers off a run is the
plain path bit for bit; with them on it still pauses and resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pipeline_helpers as helpers
import pytest
import torch
from pipeline_helpers import load, tiny_model_set

from glide_studio.diffusion.feature_reuse import FeatureReuse
from glide_studio.diffusion.guidance import cond_fn_in_window, guidance_in_window, paired_classifier_free_guidance
from glide_studio.diffusion.samplers import Sampler
from glide_studio.models.unet import ReusedFeatures
from glide_studio.pipelines import run
from glide_studio.pipelines.chains import from_noise
from glide_studio.pipelines.levers import StageDenoiser
from glide_studio.pipelines.request import Mode, RequestError
from glide_studio.pipelines.stages import model_denoiser, noise_for, text_kwargs

LEVERS = {"reuse_interval": 3, "upsample_reuse_interval": 2, "guidance_stop": 0.4, "reuse_stop": 0.1,
          "upsample_reuse_stop": 0.1}


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


@pytest.fixture(scope="module")
def base(reference_dir):
    return load(reference_dir, "tiny-base-inpaint")


def _inputs(model, rows=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 3, size, size, generator=generator)
    kwargs = text_kwargs(model, "a red circle", rows // 2, "cpu", guided=True)
    kwargs["inpaint_image"] = torch.randn(rows, 3, size, size, generator=generator)
    kwargs["inpaint_mask"] = (torch.rand(rows, 1, size, size, generator=generator) > 0.5).float()
    return x, kwargs


# -- the network split ---------------------------------------------------------------------------------

def test_a_full_call_of_the_split_network_is_forward_bit_for_bit(base):
    x, kwargs = _inputs(base)
    t = torch.tensor([500, 500])
    with torch.no_grad():
        plain = base(x, t, **kwargs)
        for shallow in (1, 2, len(base.input_blocks) - 1):
            features = ReusedFeatures(shallow)
            assert torch.equal(base(x, t, reuse=features, **kwargs), plain), shallow
            deep = features.deep
            assert deep is not None
            # Fed its own deep features back at the same input, the shallow branch gives the full output again.
            again = base(x, t, reuse=features, **kwargs)
            assert features.deep is deep and torch.equal(again, plain), shallow


def test_the_shallow_branch_uses_the_given_deep_features(base):
    x, kwargs = _inputs(base)
    with torch.no_grad():
        early = ReusedFeatures(1)
        base(x, torch.tensor([900, 900]), reuse=early, **kwargs)
        t = torch.tensor([800, 800])
        exact = base(x, t, **kwargs)
        reused = base(x, t, reuse=early, **kwargs)
        other = base(x, t, reuse=ReusedFeatures(1, torch.zeros_like(early.deep)), **kwargs)
    assert not torch.equal(reused, exact) and not torch.equal(reused, other)
    # The last output block and the head carry the features into the output: different features, different eps.
    assert (reused - other).abs().max() > 1e-3


def test_the_split_is_refused_outside_the_network(base):
    x, kwargs = _inputs(base)
    for shallow in (0, len(base.input_blocks)):
        with pytest.raises(ValueError, match="shallow_blocks"):
            base(x, torch.tensor([1, 1]), reuse=ReusedFeatures(shallow), **kwargs)


# -- the reuse policy -------------------------------------------------------------------------------------

class CountingNetwork:
    """A stand-in network: output = x + deep, where deep = t on a full call; records each call's kind."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, x, timesteps, deep=None, **_):
        self.calls.append("full" if deep is None else "shallow")
        if deep is None:
            deep = timesteps.float()[:, None, None, None].expand_as(x).clone()
        return x + deep, deep


def test_reuse_runs_the_whole_network_every_interval_steps_and_when_the_rows_change():
    network = CountingNetwork()
    reuse = FeatureReuse(network, 3)
    x1, x2 = torch.zeros(1, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    outputs = [reuse(x, torch.full((len(x),), 10 * step)) for step, x in
               enumerate([x2, x2, x2, x2, x1, x1, x1, x1])]
    assert network.calls == ["full", "shallow", "shallow", "full", "full", "shallow", "shallow", "full"]
    assert reuse.full_steps == [0, 3, 4, 7]
    assert float(outputs[2].max()) == 0.0 and float(outputs[5].max()) == 40.0  # the features of steps 0 and 4


def test_reuse_carries_its_anchor_only_while_the_next_step_needs_it():
    reuse = FeatureReuse(CountingNetwork(), 2)
    x = torch.zeros(1, 3, 2, 2)
    reuse(x, torch.tensor([5]))
    assert reuse.carried() is not None and reuse.carried().step == 0
    reuse(x, torch.tensor([4]))
    assert reuse.carried() is None  # the next step is a full one


def test_a_resumed_reuse_rebuilds_the_anchors_features():
    whole_network = CountingNetwork()
    whole = FeatureReuse(whole_network, 3)
    xs = [torch.randn(1, 3, 2, 2) for _ in range(3)]
    expected = [whole(x, torch.tensor([9 - step])) for step, x in enumerate(xs)]
    resumed_network = CountingNetwork()
    resumed = FeatureReuse(resumed_network, 3, first_step=1, anchor=whole.anchor)
    again = [resumed(x, torch.tensor([9 - step])) for step, x in enumerate(xs[1:], start=1)]
    assert all(torch.equal(a, b) for a, b in zip(again, expected[1:], strict=True))
    assert resumed_network.calls == ["full", "shallow", "shallow"]  # the anchor's rebuild, then two reuses


@pytest.mark.parametrize("interval,levels,calls", [
    (3, {"lowest_timestep": 500}, ["full", "shallow", "shallow", "full", "full", "full"]),
    (2, {"highest_timestep": 500}, ["full", "full", "full", "shallow", "full", "shallow"]),
])
def test_reuse_runs_the_whole_network_outside_its_noise_levels(interval, levels, calls):
    network = CountingNetwork()
    reuse = FeatureReuse(network, interval, **levels)
    x = torch.zeros(1, 3, 2, 2)
    for t in (999, 800, 600, 499, 300, 100):
        reuse(x, torch.tensor([t]))
    assert network.calls == calls
    assert reuse.full_steps == [step for step, call in enumerate(calls) if call == "full"]


def _full_steps(models, request, timesteps) -> list[int]:
    """The steps a base stage's denoiser runs in full over `timesteps` (two rows each)."""
    levers = StageDenoiser(models.base, None, request, guided=False)
    denoiser = levers.build("cpu")
    x, kwargs = _inputs(models.base, rows=2)
    with torch.no_grad():
        for t in timesteps:
            denoiser(x, torch.tensor([t, t]), **kwargs)
    return levers.reuse.full_steps


def test_stage_denoiser_reuses_only_inside_the_requests_noise_levels_and_the_upsampler_keeps_its_own(models):
    request = helpers.request_for(Mode.GENERATE, reuse_interval=2, reuse_start=0.5)
    # Above 500 every step in full; below, every other one.
    assert _full_steps(models, request, (999, 800, 600, 450, 300, 200)) == [0, 1, 2, 4]
    upsampler = StageDenoiser(models.base, None, request, guided=False, reuse_interval=2, reuse_stop=0.0,
                              reuse_start=1.0)
    upsampler.build("cpu")
    assert upsampler.reuse.highest_timestep == float("inf")


def test_stage_denoiser_stops_reuse_at_the_requests_noise_level(models):
    request = helpers.request_for(Mode.GENERATE, reuse_interval=2, reuse_stop=0.5)
    assert _full_steps(models, request, (999, 800, 600, 550, 450, 300)) == [0, 2, 4, 5]


@pytest.mark.parametrize("mode,interval", [(Mode.INPAINT, 2), (Mode.SDEDIT, 2), (Mode.GENERATE, 1)])
def test_the_automatic_reuse_interval_reuses_when_editing_and_not_when_generating(models, mode, interval):
    request = helpers.request_for(mode, reuse_interval=0)
    assert StageDenoiser(models.base, None, request, guided=True).interval == interval
    assert StageDenoiser(models.base, None, request.with_(reuse_interval=3), guided=True).interval == 3


def test_reuse_interval_below_one_is_refused():
    with pytest.raises(ValueError, match="interval"):
        FeatureReuse(CountingNetwork(), 0)


# -- the guidance interval --------------------------------------------------------------------------------

def test_guidance_inside_its_window_is_cfg_and_outside_the_conditional_half_alone(base):
    x, kwargs = _inputs(base, rows=2)
    x = x[:1]
    denoiser = model_denoiser(base)
    seen = []

    def recording(x, timesteps, **model_kwargs):
        seen.append((len(x), len(model_kwargs["text_emb"]["xf_proj"]), len(model_kwargs["inpaint_mask"])))
        return denoiser(x, timesteps, **model_kwargs)

    windowed = guidance_in_window(recording, 3.0, (0.4, 0.9))
    with torch.no_grad():
        inside = windowed(x, torch.tensor([500]), **kwargs)
        outside_low = windowed(x, torch.tensor([399]), **kwargs)
        windowed(x, torch.tensor([901]), **kwargs)
        assert torch.equal(inside, paired_classifier_free_guidance(denoiser, 3.0)(x, torch.tensor([500]), **kwargs))
        unguided = paired_classifier_free_guidance(denoiser, 1.0)(x, torch.tensor([399]), **kwargs)
    assert seen == [(2, 2, 2), (1, 1, 1), (1, 1, 1)]
    torch.testing.assert_close(outside_low, unguided, rtol=1e-4, atol=1e-5)


def test_the_whole_window_is_plain_paired_cfg(base):
    x, kwargs = _inputs(base, rows=2)
    t = torch.tensor([3])
    denoiser = model_denoiser(base)
    with torch.no_grad():
        assert torch.equal(guidance_in_window(denoiser, 3.0, (0.0, 1.0))(x[:1], t, **kwargs),
                           paired_classifier_free_guidance(denoiser, 3.0)(x[:1], t, **kwargs))


# -- whole runs -------------------------------------------------------------------------------------------

def test_with_the_levers_off_a_run_is_the_plain_sampler_over_the_plain_denoiser(models):
    request = helpers.request_for(Mode.GENERATE, upsample_model=None, reuse_interval=1, guidance_stop=0.0,
                                  guidance_start=1.0)
    steps = list(run(models, request))
    model = models.base
    chain = from_noise(model.config.noise_schedule, request.sampler, request.steps)
    denoiser = paired_classifier_free_guidance(model_denoiser(model), request.guidance_scale)
    from glide_studio.diffusion import Conditioning

    kwargs = text_kwargs(model, request.prompt, request.batch, "cpu", guided=True)
    shape = (request.batch, 3, models.base_size, models.base_size)
    plain = list(chain.sample(denoiser, noise_for(request), shape, "cpu", Conditioning(kwargs)))
    assert len(plain) == len(steps)
    for ours, theirs in zip(steps, plain, strict=True):
        assert torch.equal(ours.x_t, theirs.sample) and torch.equal(ours.pred_x0, theirs.pred_xstart)


@pytest.mark.parametrize("mode,sampler", [(Mode.INPAINT, Sampler.DPMPP_2M_SDE), (Mode.SDEDIT, Sampler.DPMPP_2M),
                                          (Mode.GENERATE, Sampler.ANCESTRAL), (Mode.INPAINT, Sampler.DDIM)])
def test_with_the_levers_on_pausing_then_resuming_equals_never_pausing(models, mode, sampler):
    request = helpers.request_for(mode, sampler=sampler, steps=5, upsample_steps=4, **LEVERS)
    whole = list(run(models, request))
    exact = list(run(models, request.with_(reuse_interval=1, guidance_stop=0.0)))
    assert not np.array_equal(whole[-1].final, exact[-1].final)  # the levers did change the arithmetic
    for k in range(len(whole) - 1):
        state = whole[k].state.to("cpu")
        resumed = list(run(models, request, resume=state))
        assert [s.index for s in resumed] == [s.index for s in whole[k + 1:]]
        for a, b in zip(resumed, whole[k + 1:], strict=True):
            assert torch.equal(a.x_t, b.x_t), (k, a.index)
        assert np.array_equal(resumed[-1].final, whole[-1].final)


def test_a_state_keeps_the_anchor_only_between_a_full_step_and_its_reuses(models):
    request = helpers.request_for(Mode.GENERATE, upsample_model=None, steps=5, reuse_interval=3)
    anchors = [step.state.reuse_anchor for step in run(models, request)]
    # (the last state keeps its anchor too: the wrapper does not know that the stage ends there)
    assert [anchor.step if anchor else None for anchor in anchors] == [0, 0, None, 3, 3]
    assert anchors[0].size_bytes > 0
    assert all(s.state.size_bytes >= s.state.sampler.size_bytes for s in run(models, request))


def test_stage_denoiser_counts_its_full_steps(models):
    request = helpers.request_for(Mode.GENERATE, reuse_interval=4)
    levers = StageDenoiser(models.base, None, request, guided=False)
    denoiser = levers.build("cpu")
    x, kwargs = _inputs(models.base, rows=2)
    with torch.no_grad():
        for step in range(6):
            denoiser(x, torch.tensor([999 - step, 999 - step]), **kwargs)
    assert levers.reuse.full_steps == [0, 4]


@pytest.mark.parametrize("changes", [{"reuse_interval": -1}, {"guidance_stop": 1.5}, {"guidance_start": -0.1},
                                     {"reuse_stop": 1.2}, {"upsample_reuse_stop": -0.5}])
def test_lever_settings_out_of_range_are_clear_errors(models, changes):
    with pytest.raises(RequestError, match=next(iter(changes))):
        run(models, helpers.request_for(Mode.GENERATE, **changes))


def test_clip_guidance_gradient_only_inside_the_window():
    calls = []

    def cond_fn(x, timesteps, **_):
        calls.append(int(timesteps[0]))
        return torch.ones_like(x)

    windowed = cond_fn_in_window(cond_fn, (0.3, 1.0))
    x = torch.zeros(1, 3, 2, 2)
    assert torch.equal(windowed(x, torch.tensor([500])), torch.ones_like(x))
    assert torch.equal(windowed(x, torch.tensor([299])), torch.zeros_like(x))
    assert calls == [500]  # outside the window the CLIP model does not run
    assert cond_fn_in_window(cond_fn, (0.0, 1.0)) is cond_fn


def test_a_clip_guided_run_with_the_window_skips_clip_at_low_noise(reference_dir):
    models = tiny_model_set(reference_dir, clip=True)
    request = helpers.request_for(Mode.GENERATE, upsample_model=None, guidance="clip", steps=4, reuse_interval=1)
    seen = []
    encoder = models.clip_image
    original = encoder.forward
    encoder.forward = lambda x, t, *a, **k: seen.append(int(t[0])) or original(x, t, *a, **k)
    try:
        windowed = list(run(models, request.with_(guidance_stop=0.3)))
        in_window = list(seen)
        seen.clear()
        everywhere = list(run(models, request.with_(guidance_stop=0.0)))
    finally:
        del encoder.forward
    assert len(everywhere) == len(windowed) == 4
    assert len(seen) == 4 and in_window == [t for t in seen if t >= 300] and len(in_window) < 4
