"""Each stage's reverse chain: the request's sampler, the respaced timesteps it runs, and the x_T it starts from.

A chain starts from fresh noise at the top of the stage's schedule, or (SDEdit) from a given image noised to
the request's `strength`. Strength is a noise level (diffusion time), not a share of the steps: below 1 the
chain starts part-way down, at that level, and still has the steps asked for. Where the chain starts, its
partial schedule and the noising of the image are all decided here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import torch

from glide_studio.diffusion import (
    Conditioning,
    Diffusion,
    NoiseSource,
    Sampler,
    SamplerState,
    SamplerStep,
    chain_key,
    get_sampler,
)
from glide_studio.diffusion.samplers import LOG_SNR_GRID_SAMPLERS
from glide_studio.diffusion.schedules import log_snr_timesteps, partial_timesteps
from glide_studio.pipelines.state import RunState

UPSAMPLE_TEMPERATURE = 0.997
"""GLIDE's notebooks scale the upsampler's starting noise (only x_T) by this."""


@dataclass(frozen=True)
class Chain:
    """`sampler` over the respaced `diffusion`, from its top step. It starts there from `start_image`
    ((1, 3, H, W) in [-1, 1]) noised to that step, or, without one, from fresh noise times `temperature`."""

    sampler: str
    diffusion: Diffusion
    eta: float = 0.0
    start_image: torch.Tensor | None = None
    temperature: float = 1.0

    @property
    def num_steps(self) -> int:
        return self.diffusion.num_steps

    @property
    def key(self) -> str:
        """Which chain this is, as a sampler state records it (`diffusion.chain_key`)."""
        return chain_key(self.diffusion)

    @property
    def levels(self) -> tuple[float, ...]:
        """The noise level, as a strength, that x sits at before each respaced index runs (index t: level of
        timestep_map[t]), so a state can say how noisy its x is."""
        last = self.diffusion.num_base_steps - 1
        return tuple(float(timestep) / last for timestep in self.diffusion.timestep_map.tolist())

    def restart(self, state: SamplerState, first_noise: torch.Tensor) -> SamplerState:
        """The strength scrubber: x becomes `start_image` noised to the level the state has reached with the
        run's own first draw (the start noise of every strength), as if the chain had started there; the steps
        above stay the stored run's, the ones below are this chain's own. A multistep history is dropped (a
        fresh start has none); the noise source goes on where the state left it."""
        if self.start_image is None:
            raise ValueError("only a chain that starts from an image can start over at a lower level")
        x = state.x
        level = torch.full((x.shape[0],), max(state.t, 0), dtype=torch.int64, device=x.device)
        image = self.start_image.to(x.device).expand(x.shape[0], -1, -1, -1)
        fresh = self.diffusion.q_sample(image, level, first_noise.to(device=x.device, dtype=x.dtype))
        return SamplerState(state.sampler, state.chain, fresh.to(x.dtype), state.t, state.index, state.noise)

    def x_T(self, noise: NoiseSource, shape: tuple[int, ...], device) -> torch.Tensor:
        """The first sample, from one draw of `noise`."""
        if self.start_image is None:
            x_T = noise.draw(shape, device=device)
            return x_T if self.temperature == 1.0 else x_T * self.temperature
        x_start = self.start_image.expand(shape[0], -1, -1, -1)
        top = torch.full((shape[0],), self.num_steps - 1, dtype=torch.int64, device=device)
        return self.diffusion.q_sample(x_start, top, noise.draw(x_start.shape, device=device))

    def sample(self, denoiser, noise: NoiseSource, shape: tuple[int, ...], device,
               conditioning: Conditioning, state: SamplerState | None = None) -> Iterator[SamplerStep]:
        """Draw x_T now, then run the sampler down the whole chain; or, given a `state` (and `noise` as the
        state left it), continue the chain from there, drawing no x_T."""
        extra = {"eta": self.eta} if self.sampler == Sampler.DDIM else {}
        sampler = get_sampler(self.sampler)
        if state is not None:
            return sampler(denoiser, self.diffusion, noise, state=state.to(device), conditioning=conditioning,
                           **extra)
        return sampler(denoiser, self.diffusion, noise, x_T=self.x_T(noise, shape, device),
                       conditioning=conditioning, **extra)


def respaced(schedule: str, sampler: str, steps: int, *, upsampler: bool = False) -> Diffusion:
    """The whole schedule in `steps` steps: an even-in-log-SNR grid for DPM-Solver++, the reference's
    respacing otherwise ("fast27" for a 27-step upsample, as GLIDE's notebooks use)."""
    if sampler in LOG_SNR_GRID_SAMPLERS:
        return Diffusion(schedule, timesteps=log_snr_timesteps(schedule, steps))
    if upsampler and steps == 27:
        return Diffusion(schedule, "fast27")
    return Diffusion(schedule, str(steps))


def from_noise(schedule: str, sampler: str, steps: int, *, eta: float = 0.0, upsampler: bool = False) -> Chain:
    """The whole chain from fresh noise (the upsampler's scaled by `UPSAMPLE_TEMPERATURE`)."""
    temperature = UPSAMPLE_TEMPERATURE if upsampler else 1.0
    return Chain(sampler, respaced(schedule, sampler, steps, upsampler=upsampler), eta, temperature=temperature)


def start_from_image(schedule: str, sampler: str, steps: int, strength: float, image: torch.Tensor | None, *,
                     eta: float = 0.0) -> Chain:
    """SDEdit: `steps` steps from the noise level `strength` down to the data, starting from `image` noised
    to that level; at strength 1 the whole chain, from the image noised to its top step. (`image` None: a
    chain whose image is only known when it starts, given then with `dataclasses.replace`.)"""
    if strength >= 1.0:
        return Chain(sampler, respaced(schedule, sampler, steps), eta, start_image=image)
    timesteps = partial_timesteps(schedule, steps, strength, log_snr_grid=sampler in LOG_SNR_GRID_SAMPLERS)
    return Chain(sampler, Diffusion(schedule, timesteps=timesteps), eta, start_image=image)


@dataclass(frozen=True)
class StartOver(SamplerState):
    """A stored state to re-run an image-started chain from (`Chain.restart`), rather than to go on from."""

    @classmethod
    def of(cls, state: SamplerState) -> StartOver:
        return cls(**{spec.name: getattr(state, spec.name) for spec in fields(SamplerState)})


def start_over(state: RunState) -> RunState:
    """A kept run state turned into the start of a re-run from its level (the strength scrubber): the request
    that runs it keeps the stored run's chain (its strength and steps) and seed."""
    return replace(state, sampler=StartOver.of(state.sampler), reuse_anchor=None)
