"""A run's state is data: pausing any mode after any step, in either stage, and resuming later from the
step's `state` gives the same pixels, bit for bit, as never pausing; a resumed run takes its conditioning
from the new request; a state from another run is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pipeline_helpers as helpers
import pytest
import torch
from pipeline_helpers import BASE_SIZE, UPSAMPLE_SIZE, rect_mask, tiny_model_set

from glide_studio.diffusion import NoiseState, SamplerState
from glide_studio.diffusion.samplers import Sampler
from glide_studio.pipelines import PipelineError, RunState, run
from glide_studio.pipelines.request import Mode
from glide_studio.pipelines.stages import tensor_to_uint8

W = H = UPSAMPLE_SIZE
BASE_STEPS, UPSAMPLE_STEPS = 3, 3


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


def request_for(mode, **changes):
    return helpers.request_for(mode, **{"steps": BASE_STEPS, "upsample_steps": UPSAMPLE_STEPS, "seed": 11,
                                        **changes})


def pause_points(mode):
    """A step inside the base stage, its last step (the upsampler not started yet), one inside the upsampler."""
    if mode == Mode.UPSAMPLE:
        return [0, 1]
    return [1, BASE_STEPS - 1, BASE_STEPS + 1]


def assert_same_steps(resumed, original):
    assert [s.index for s in resumed] == [s.index for s in original]
    assert [(s.stage, s.stage_index, s.total) for s in resumed] == [(s.stage, s.stage_index, s.total) for s in original]
    for a, b in zip(resumed, original, strict=True):
        assert torch.equal(a.x_t, b.x_t), a.index
        assert torch.equal(a.pred_x0, b.pred_x0), a.index
    assert np.array_equal(resumed[-1].final, original[-1].final)


@pytest.mark.parametrize("sampler", list(Sampler))
@pytest.mark.parametrize("mode", list(Mode))
def test_pausing_then_resuming_equals_never_pausing(models, mode, sampler):
    request = request_for(mode, sampler=sampler)
    whole = list(run(models, request))
    for k in pause_points(mode):
        # The state kept on the CPU, as a scrubber would, and the rest run by a fresh generator.
        state = whole[k].state.to("cpu")
        assert state.mode == mode.value and state.stage == whole[k].stage
        assert_same_steps(list(run(models, request, resume=state)), whole[k + 1:])


def test_pausing_mid_run_is_just_not_asking(models):
    """The live case: stop draining, keep the state, later resume (the first generator closed meanwhile)."""
    request = request_for(Mode.INPAINT)
    whole = list(run(models, request))
    steps = run(models, request)
    taken = [next(steps) for _ in range(2)]
    steps.close()
    assert_same_steps(list(run(models, request, resume=taken[-1].state)), whole[2:])


def test_the_upsampler_resumes_from_the_kept_base_result(models):
    whole = list(run(models, request_for(Mode.GENERATE)))
    upsample_state = whole[BASE_STEPS + 1].state
    assert upsample_state.stage_number == 1
    assert upsample_state.previous is whole[BASE_STEPS].state.previous  # one array per stage, shared
    assert np.array_equal(upsample_state.previous, tensor_to_uint8(whole[BASE_STEPS - 1].x_t))
    assert whole[0].state.previous is None


def test_resuming_with_another_prompt_recomputes_the_text(models):
    request = request_for(Mode.INPAINT)
    whole = list(run(models, request))
    other = list(run(models, request.with_(prompt="a green triangle"), resume=whole[0].state))
    assert len(other) == len(whole) - 1
    assert not torch.equal(other[0].x_t, whole[1].x_t)  # the new caption steers from the very next step


def test_resuming_with_another_mask_keeps_the_new_known_pixels(models):
    request = request_for(Mode.INPAINT)
    whole = list(run(models, request))
    new_mask = rect_mask(W, H, 30, 4, 60, 30)
    resumed = list(run(models, request.with_(mask=new_mask), resume=whole[1].state))
    final = resumed[-1].final
    keep = new_mask == 0
    assert np.array_equal(final[:, keep], np.broadcast_to(request.image[keep], final[:, keep].shape))
    assert not np.array_equal(final, whole[-1].final)


@pytest.mark.parametrize(("source", "target", "match"), [
    (dict(mode=Mode.GENERATE), dict(mode=Mode.INPAINT), "from a run in mode generate; this request's mode is inpaint"),
    (dict(), dict(batch=1), "shape"),
    (dict(), dict(sampler=Sampler.DDIM), "sampled with dpm\\+\\+2m-sde"),
    (dict(), dict(steps=BASE_STEPS + 1), "another base chain"),
    (dict(mode=Mode.SDEDIT), dict(mode=Mode.SDEDIT, strength=0.5), "another base chain"),
])
def test_a_state_from_another_run_is_refused(models, source, target, match):
    state = next(iter(run(models, request_for(**{"mode": Mode.INPAINT, **source})))).state
    with pytest.raises(PipelineError, match=match):
        run(models, request_for(**{"mode": Mode.INPAINT, **target}), resume=state)


def test_an_upsampler_state_is_refused_by_a_run_without_the_upsampler(models):
    steps = list(run(models, request_for(Mode.GENERATE)))
    with pytest.raises(PipelineError, match="stage 2 \\(upsample\\).*stages are base$"):
        run(models, request_for(Mode.GENERATE, upsample_model=None), resume=steps[-1].state)
    upsample_only = next(iter(run(models, request_for(Mode.UPSAMPLE)))).state
    with pytest.raises(PipelineError, match="mode upsample"):
        run(models, request_for(Mode.GENERATE), resume=upsample_only)


def _values(obj):
    if dataclasses.is_dataclass(obj):
        for spec in dataclasses.fields(obj):
            yield from _values(getattr(obj, spec.name))
    else:
        yield obj


def test_a_state_is_small_plain_data(models):
    """A scrubber keeps one per step: only tensors of this step, the RNG bytes and the stage's input."""
    steps = list(run(models, request_for(Mode.GENERATE, sampler=Sampler.DPMPP_2M)))
    state = steps[BASE_STEPS + 1].state
    assert isinstance(state, RunState) and isinstance(state.sampler, SamplerState)
    assert isinstance(state.sampler.noise, NoiseState)
    for value in _values(state):
        assert value is None or isinstance(value, (str, int, float, bytes, torch.Tensor, np.ndarray)), type(value)
    assert state.sampler.x is steps[BASE_STEPS + 1].x_t
    assert state.sampler.previous_x0 is steps[BASE_STEPS + 1].pred_x0
    x_bytes = 2 * 3 * UPSAMPLE_SIZE * UPSAMPLE_SIZE * 4
    expected = 2 * x_bytes + len(state.sampler.noise.rng) + 2 * BASE_SIZE * BASE_SIZE * 3
    assert state.size_bytes == expected
    moved = state.to("cpu")
    assert moved.sampler.x.device.type == "cpu" and moved.previous is state.previous
