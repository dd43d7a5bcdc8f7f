"""A sampler's state is data: stopping after any step and starting a new sampler call from the kept state
gives the same samples, bit for bit, as never stopping."""

from __future__ import annotations

import pytest
import torch

from glide_studio.diffusion import Diffusion, DiffusionError, NoiseSource, get_sampler
from glide_studio.diffusion.noise import NoiseState
from glide_studio.diffusion.schedules import log_snr_timesteps
from glide_studio.diffusion.state import own

SHAPE = (3, 3, 8, 8)
SAMPLERS = ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde"]


def denoiser(x, timesteps, **_):
    """Any fixed smooth function of (x, t) with eps and variance channels exercises every code path."""
    scale = (timesteps.float() / 1000).view(-1, 1, 1, 1)
    return torch.cat([torch.tanh(x * (1 + scale)) * 0.7, torch.sin(x + scale)], dim=1)


def chain(name, steps=8):
    if name.startswith("dpm"):
        return Diffusion("squaredcos_cap_v2", timesteps=log_snr_timesteps("squaredcos_cap_v2", steps))
    return Diffusion("squaredcos_cap_v2", str(steps))


def kwargs_for(name):
    return {"eta": 0.6} if name == "ddim" else {}


def fresh_noise(seed=3):
    return NoiseSource.from_generator(torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SAMPLERS)
def test_resuming_after_any_step_equals_never_stopping(name):
    diffusion = chain(name)
    sampler = get_sampler(name)
    whole = list(sampler(denoiser, diffusion, fresh_noise(), shape=SHAPE, **kwargs_for(name)))
    assert [step.state.index for step in whole] == list(range(1, diffusion.num_steps + 1))
    assert whole[-1].state.done
    for k in range(diffusion.num_steps - 1):
        kept = whole[k].state.to("cpu")
        noise = NoiseSource.from_state(kept.noise)
        rest = list(sampler(denoiser, diffusion, noise, state=kept, **kwargs_for(name)))
        assert [step.index for step in rest] == [step.index for step in whole[k + 1:]]
        assert [step.t for step in rest] == [step.t for step in whole[k + 1:]]
        for resumed, original in zip(rest, whole[k + 1:], strict=True):
            assert torch.equal(resumed.sample, original.sample), (name, k, resumed.index)
            assert torch.equal(resumed.pred_xstart, original.pred_xstart)


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_partial_chain_resumes_too(name):
    """SDEdit's start part-way down (t_start, a given x_T) keeps its place in the state."""
    diffusion = chain(name, 12)
    sampler = get_sampler(name)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    whole = list(sampler(denoiser, diffusion, fresh_noise(), x_T=x_T, t_start=6, **kwargs_for(name)))
    assert len(whole) == 7
    kept = whole[2].state
    rest = list(sampler(denoiser, diffusion, NoiseSource.from_state(kept.noise), state=kept, **kwargs_for(name)))
    assert torch.equal(rest[-1].sample, whole[-1].sample)


@pytest.mark.parametrize("name", SAMPLERS)
def test_replayed_noise_resumes_at_its_recorded_position(name):
    diffusion = chain(name)
    sampler = get_sampler(name)
    draws = [torch.randn(SHAPE, generator=torch.Generator().manual_seed(i)) for i in range(diffusion.num_steps + 1)]
    whole = list(sampler(denoiser, diffusion, NoiseSource.from_recorded(draws), shape=SHAPE, **kwargs_for(name)))
    kept = whole[3].state
    assert kept.noise.kind == "recorded" and kept.noise.rng is None
    noise = NoiseSource.from_state(kept.noise, recorded=draws)
    rest = list(sampler(denoiser, diffusion, noise, state=kept, **kwargs_for(name)))
    assert torch.equal(rest[-1].sample, whole[-1].sample)


def test_only_the_multistep_solvers_carry_history():
    for name in SAMPLERS:
        state = next(iter(get_sampler(name)(denoiser, chain(name), fresh_noise(), shape=SHAPE))).state
        carries = name.startswith("dpm")
        assert (state.previous_x0 is not None) == carries and (state.previous_h is not None) == carries


def test_a_state_holds_only_its_own_tensors():
    """One state per step is kept for scrubbing: no view into a larger buffer, nothing but x and x0."""
    steps = list(get_sampler("dpm++2m-sde")(denoiser, chain("dpm++2m-sde"), fresh_noise(), shape=SHAPE))
    state = steps[2].state
    values = 2 * SHAPE[0] * 3 * 8 * 8 * 4
    assert state.size_bytes == values + len(state.noise.rng)
    assert state.x is steps[2].sample and state.previous_x0 is steps[2].pred_xstart
    assert all(t.untyped_storage().nbytes() == t.nbytes for t in state.tensors())


def test_a_view_is_copied_before_it_is_kept():
    """A view would pin its whole buffer (say both halves of a guided batch) for as long as the state lives."""
    batch = torch.zeros(6, 3, 8, 8)
    kept = own(batch[:3])
    assert kept.untyped_storage().nbytes() == kept.nbytes and torch.equal(kept, batch[:3])
    assert own(kept) is kept


def test_a_state_from_elsewhere_is_refused():
    ddim = list(get_sampler("ddim")(denoiser, chain("ddim"), fresh_noise(), shape=SHAPE))
    state = ddim[1].state
    with pytest.raises(DiffusionError, match="ddim state cannot continue with the ancestral"):
        next(get_sampler("ancestral")(denoiser, chain("ddim"), fresh_noise(), state=state))
    with pytest.raises(DiffusionError, match="another chain"):
        next(get_sampler("ddim")(denoiser, chain("ddim", 9), fresh_noise(), state=state))
    with pytest.raises(DiffusionError, match="not both"):
        next(get_sampler("ddim")(denoiser, chain("ddim"), fresh_noise(), state=state, x_T=state.x))
    dpm = get_sampler("dpm++2m")(denoiser, chain("dpm++2m"), fresh_noise(), state=state)
    with pytest.raises(DiffusionError, match="cannot continue"):
        next(dpm)


def test_a_done_state_has_no_steps_left():
    steps = list(get_sampler("ancestral")(denoiser, chain("ancestral"), fresh_noise(), shape=SHAPE))
    assert list(get_sampler("ancestral")(denoiser, chain("ancestral"), fresh_noise(), state=steps[-1].state)) == []


def test_noise_states_restore_only_their_kind():
    generator_state = fresh_noise().state()
    assert generator_state.kind == "generator" and generator_state.device == "cpu"
    with pytest.raises(DiffusionError, match="recorded draws"):
        NoiseSource.from_state(NoiseState("recorded", 0))
    with pytest.raises(DiffusionError, match="cannot take"):
        NoiseSource.from_recorded([]).restore(generator_state)
    with pytest.raises(DiffusionError, match="only 1 are recorded"):
        NoiseSource.from_recorded([torch.zeros(1)]).restore(NoiseState("recorded", 2))
    a, b = fresh_noise(), NoiseSource.from_state(generator_state)
    assert torch.equal(a.draw((5,)), b.draw((5,)))
