"""Samplers: generators that run the reverse chain and yield one `SamplerStep` per step.

Each takes a denoiser callable, a `Diffusion` and a `NoiseSource`, nothing hidden, so a run is
reproducible from its seed and replayable from recorded noise. Guidance (classifier-free, CLIP,
known-pixel pasting) comes in as wrappers: a wrapped denoiser, and a `Conditioning` holding the model's
kwargs, a `denoised_fn` applied to x0 before the clamp and a `cond_fn` returning a gradient.

All samplers can start part-way down the chain (`t_start`, a respaced index) from a given `x_T`; that
is how SDEdit runs. Each step also carries the `SamplerState` after it, and every sampler can start from
such a state instead (`state=`, with the noise source restored to `state.noise`): running to step k,
keeping the state and starting a new call from it gives the same samples, bit for bit, as never stopping.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import partial

import torch

from glide_studio.diffusion.conditioning import UNCONDITIONED, Conditioning
from glide_studio.diffusion.errors import DiffusionError
from glide_studio.diffusion.gaussian import Denoiser, Diffusion, MeanVariance
from glide_studio.diffusion.noise import NoiseSource
from glide_studio.diffusion.state import SamplerState, chain_key, own


@dataclass
class SamplerStep:
    """The state after one reverse step: `sample` is x_{t-1}, `pred_xstart` the x0 predicted at t."""

    index: int
    t: int
    sample: torch.Tensor
    pred_xstart: torch.Tensor
    mean: torch.Tensor | None = None
    log_variance: torch.Tensor | None = None
    state: SamplerState | None = None
    """Everything a new sampler call needs to continue after this step."""


def _initial_state(sampler: str, diffusion: Diffusion, noise: NoiseSource | None, shape, x_T, t_start, device,
                   state: SamplerState | None) -> SamplerState:
    """Where the chain starts: the given state, or x_T (given, or drawn from `noise`) at `t_start`."""
    if state is not None:
        if x_T is not None or t_start is not None:
            raise DiffusionError("a sampler starts from a state or from x_T/t_start, not both")
        state.check_continues(sampler, diffusion)
        return state
    start = diffusion.num_steps - 1 if t_start is None else diffusion.check_index(int(t_start))
    if x_T is None:
        if shape is None:
            raise DiffusionError("a sampler needs either x_T or a shape to draw x_T from")
        if noise is None:
            raise DiffusionError("a sampler without x_T needs a noise source")
        x_T = noise.draw(shape, device=device)
    return SamplerState(sampler, chain_key(diffusion), x_T, start, 0)


def _after(state: SamplerState, x: torch.Tensor, noise: NoiseSource | None, previous_x0=None,
           previous_h=None) -> SamplerState:
    """The state after the step at `state.t`; it holds only this step's own tensors."""
    return SamplerState(state.sampler, state.chain, own(x), state.t - 1, state.index + 1,
                        None if noise is None else noise.state(), own(previous_x0), previous_h)


def _timesteps(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.int64, device=x.device)


def _predict(denoiser: Denoiser, diffusion: Diffusion, x: torch.Tensor, t: torch.Tensor,
             conditioning: Conditioning, *, shift_score: bool, threshold: bool = False) -> MeanVariance:
    """The model's prediction at t; with `shift_score` the cond_fn (if any) shifts the score, as DDIM-style
    samplers do. The ancestral sampler shifts the mean instead, after its noise draw.

    `threshold` clamps the shifted x0 again (where the conditioning clamps): a score shift moves x0 by
    (1 - alpha_bar) / sqrt(alpha_bar) times the gradient, hundreds of times the gradient at the first steps, and
    a data-prediction solver steps straight to that x0 (DPM-Solver++ thresholds guided predictions for this)."""
    out = diffusion.p_mean_variance(denoiser, x, t, clip_denoised=conditioning.clip_denoised,
                                    denoised_fn=conditioning.denoised_fn, model_kwargs=conditioning.model_kwargs)
    if shift_score and conditioning.cond_fn is not None:
        out = diffusion.condition_score(conditioning.cond_fn, out, x, t, conditioning.model_kwargs)
        if threshold and conditioning.clip_denoised:
            out = dataclasses.replace(out, pred_xstart=out.pred_xstart.clamp(-1, 1))
    return out


def ancestral_sample(denoiser: Denoiser, diffusion: Diffusion, noise: NoiseSource, *, shape=None,
                     x_T=None, t_start: int | None = None, device="cpu",
                     conditioning: Conditioning = UNCONDITIONED,
                     state: SamplerState | None = None) -> Iterator[SamplerStep]:
    """GLIDE's p_sample loop: learned-variance ancestral sampling.

    Draw order matches the reference: x_T (if not given), then one draw per step *before* cond_fn runs,
    including the t=0 step whose draw is multiplied by zero.
    """
    state = _initial_state(Sampler.ANCESTRAL.value, diffusion, noise, shape, x_T, t_start, device, state)
    x = state.x
    for t in range(state.t, -1, -1):
        tt = _timesteps(t, x)
        with torch.no_grad():
            out = _predict(denoiser, diffusion, x, tt, conditioning, shift_score=False)
            z = noise.draw(x.shape, device=x.device, dtype=x.dtype)
            mean = out.mean
            if conditioning.cond_fn is not None:
                mean = diffusion.condition_mean(conditioning.cond_fn, out, x, tt, conditioning.model_kwargs)
            keep_noise = 0.0 if t == 0 else 1.0
            x = mean + keep_noise * torch.exp(0.5 * out.log_variance) * z
        state = _after(state, x, noise)
        yield SamplerStep(state.index - 1, t, x, out.pred_xstart, mean, out.log_variance, state)


def _ddim_coefficients(diffusion: Diffusion, tt: torch.Tensor, x: torch.Tensor, eta: float):
    alpha_bar = diffusion.coef("alphas_cumprod", tt, x)
    alpha_bar_prev = diffusion.coef("alphas_cumprod_prev", tt, x)
    sigma = (eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
             * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
    return alpha_bar_prev, sigma


def ddim_sample(denoiser: Denoiser, diffusion: Diffusion, noise: NoiseSource, *, eta: float = 0.0,
                shape=None, x_T=None, t_start: int | None = None, device="cpu",
                conditioning: Conditioning = UNCONDITIONED,
                state: SamplerState | None = None) -> Iterator[SamplerStep]:
    """DDIM with stochasticity eta. A noise draw happens every step even at eta=0 (reference RNG parity).

    A cond_fn shifts the score (`condition_score`); the corrected x0 is not clamped again.
    """
    state = _initial_state(Sampler.DDIM.value, diffusion, noise, shape, x_T, t_start, device, state)
    x = state.x
    for t in range(state.t, -1, -1):
        tt = _timesteps(t, x)
        with torch.no_grad():
            out = _predict(denoiser, diffusion, x, tt, conditioning, shift_score=True)
            eps = diffusion.predict_eps_from_xstart(x, tt, out.pred_xstart)
            alpha_bar_prev, sigma = _ddim_coefficients(diffusion, tt, x, eta)
            z = noise.draw(x.shape, device=x.device, dtype=x.dtype)
            mean = (out.pred_xstart * torch.sqrt(alpha_bar_prev)
                    + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps)
            keep_noise = 0.0 if t == 0 else 1.0
            x = mean + keep_noise * sigma * z
        state = _after(state, x, noise)
        yield SamplerStep(state.index - 1, t, x, out.pred_xstart, state=state)


def ddim_reverse_step(denoiser: Denoiser, diffusion: Diffusion, x: torch.Tensor, t: torch.Tensor, *,
                      conditioning: Conditioning = UNCONDITIONED) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic DDIM step *up* the chain, x_t -> x_{t+1}. Returns (sample, pred_xstart).

    As in the reference, the step up takes no guidance gradient: a conditioning with a cond_fn is refused.
    """
    if conditioning.cond_fn is not None:
        raise DiffusionError("the reverse DDIM step takes no cond_fn")
    with torch.no_grad():
        out = _predict(denoiser, diffusion, x, t, conditioning, shift_score=False)
        eps = diffusion.predict_eps_from_xstart(x, t, out.pred_xstart)
        alpha_bar_next = diffusion.coef("alphas_cumprod_next", t, x)
        sample = out.pred_xstart * torch.sqrt(alpha_bar_next) + torch.sqrt(1 - alpha_bar_next) * eps
    return sample, out.pred_xstart


def _half_log_snr(alpha_bar: float) -> float:
    return 0.5 * math.log(alpha_bar / (1 - alpha_bar))


def dpmpp_2m_sample(denoiser: Denoiser, diffusion: Diffusion, noise: NoiseSource | None, *, shape=None,
                    x_T=None, t_start: int | None = None, device="cpu",
                    conditioning: Conditioning = UNCONDITIONED,
                    state: SamplerState | None = None) -> Iterator[SamplerStep]:
    """DPM-Solver++(2M) (Lu et al. 2022) over the respaced grid, in data-prediction form.

    Uses the clamped, denoised_fn-processed x0 as the data prediction, with a second-order multistep
    correction from the previous step's x0; the first step and the final step to t=-1 (sigma = 0, where
    the update reduces to x0) are first order. Deterministic: noise is drawn only for x_T.
    """
    begin = partial(_initial_state, Sampler.DPMPP_2M.value, diffusion, noise, shape, x_T, t_start, device, state)
    return _dpmpp_2m(denoiser, diffusion, noise, None, begin, conditioning)


def dpmpp_2m_sde_sample(denoiser: Denoiser, diffusion: Diffusion, noise: NoiseSource, *, shape=None,
                        x_T=None, t_start: int | None = None, device="cpu",
                        conditioning: Conditioning = UNCONDITIONED,
                        state: SamplerState | None = None) -> Iterator[SamplerStep]:
    """SDE-DPM-Solver++(2M): the same multistep data prediction, integrating the reverse SDE instead of the
    ODE, so each step forgets part of x_t and draws fresh noise (one draw per step, except the last).

    Fresh noise lets later steps correct part of earlier steps' x0 errors, as ancestral sampling does, at the
    2M solver's step count; the ODE path carries every error to the end.
    """
    if noise is None:
        raise DiffusionError("the SDE sampler needs a noise source")
    begin = partial(_initial_state, Sampler.DPMPP_2M_SDE.value, diffusion, noise, shape, x_T, t_start, device, state)
    return _dpmpp_2m(denoiser, diffusion, noise, noise, begin, conditioning)


def _dpmpp_2m(denoiser: Denoiser, diffusion: Diffusion, noise: NoiseSource | None,
              step_noise: NoiseSource | None, begin: Callable[[], SamplerState],
              conditioning: Conditioning) -> Iterator[SamplerStep]:
    """The 2M loop; with `step_noise` each update is the SDE one, with e^{-h} of x_t kept:
    x_s = (sigma_s / sigma_t) e^{-h} x_t + alpha_s (1 - e^{-2h}) D + sigma_s sqrt(1 - e^{-2h}) z.

    `begin` gives the starting state; it runs at the first step asked for, as the other samplers' setup does
    (so x_T is drawn then, not when the generator is made)."""
    state = begin()
    x, previous_x0, previous_h = state.x, state.previous_x0, state.previous_h
    for t in range(state.t, -1, -1):
        tt = _timesteps(t, x)
        with torch.no_grad():
            out = _predict(denoiser, diffusion, x, tt, conditioning, shift_score=True, threshold=True)
            x0 = out.pred_xstart
            alpha_bar = float(diffusion.alphas_cumprod[t])
            alpha_bar_next = float(diffusion.alphas_cumprod_prev[t])
            if alpha_bar_next >= 1.0:
                x = x0
                h = None
            else:
                sigma_t, sigma_s = math.sqrt(1 - alpha_bar), math.sqrt(1 - alpha_bar_next)
                alpha_s = math.sqrt(alpha_bar_next)
                h = _half_log_snr(alpha_bar_next) - _half_log_snr(alpha_bar)
                if previous_x0 is None or previous_h is None:
                    data = x0
                else:
                    ratio = previous_h / h
                    data = (1 + 1 / (2 * ratio)) * x0 - (1 / (2 * ratio)) * previous_x0
                if step_noise is None:
                    x = (sigma_s / sigma_t) * x - (alpha_s * math.expm1(-h)) * data
                else:
                    forget = -math.expm1(-2 * h)
                    z = step_noise.draw(x.shape, device=x.device, dtype=x.dtype)
                    x = ((sigma_s / sigma_t) * math.exp(-h)) * x + (alpha_s * forget) * data \
                        + (sigma_s * math.sqrt(forget)) * z
            previous_x0, previous_h = x0, h
        state = _after(state, x, noise, previous_x0, previous_h)
        yield SamplerStep(state.index - 1, t, x, x0, state=state)


class Sampler(str, Enum):
    """The samplers by their recorded names (a str enum: it compares and hashes as its name)."""

    DPMPP_2M_SDE = "dpm++2m-sde"
    DPMPP_2M = "dpm++2m"
    DDIM = "ddim"
    ANCESTRAL = "ancestral"

    def __str__(self) -> str:
        return self.value


SAMPLERS: dict[Sampler, Callable[..., Iterator[SamplerStep]]] = {
    Sampler.ANCESTRAL: ancestral_sample,
    Sampler.DDIM: ddim_sample,
    Sampler.DPMPP_2M: dpmpp_2m_sample,
    Sampler.DPMPP_2M_SDE: dpmpp_2m_sde_sample,
}
LOG_SNR_GRID_SAMPLERS = frozenset({Sampler.DPMPP_2M, Sampler.DPMPP_2M_SDE})
"""Samplers that step evenly in log-SNR (`schedules.log_snr_timesteps`) rather than on the reference's respacing."""


def get_sampler(name: str) -> Callable[..., Iterator[SamplerStep]]:
    try:
        return SAMPLERS[Sampler(name)]
    except ValueError:
        known = ", ".join(sampler.value for sampler in Sampler)
        raise DiffusionError(f"unknown sampler {name!r}; expected one of {known}") from None
