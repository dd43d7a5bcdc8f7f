"""A sampler's state between two steps, as data: everything a new sampler call needs to continue a chain
exactly where an earlier one stopped (pause, resume, fork, scrub all start from one of these)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from glide_studio.diffusion.errors import DiffusionError
from glide_studio.diffusion.gaussian import Diffusion
from glide_studio.diffusion.noise import NoiseState


def chain_key(diffusion: Diffusion) -> str:
    """A short digest of the chain's timesteps: a state only continues the chain it was taken from (the same
    number of steps is not enough: SDEdit's strength moves the steps)."""
    spec = f"{diffusion.schedule}/{diffusion.num_base_steps}/".encode()
    return hashlib.sha1(spec + diffusion.timestep_map.numpy().tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class SamplerState:
    """The chain after `index` steps: the next step runs at respaced index `t` on `x` (t = -1: done).

    `noise` is where the noise source stood after the last step (None if it could not say); `previous_x0`
    and `previous_h` are the multistep solvers' history (DPM-Solver++(2M) and its SDE form); ancestral and
    DDIM carry none. Tensors stay on the run's device; `to("cpu")` to keep many.
    """

    sampler: str
    chain: str
    x: torch.Tensor
    t: int
    index: int
    noise: NoiseState | None = None
    previous_x0: torch.Tensor | None = None
    previous_h: float | None = None

    @property
    def done(self) -> bool:
        return self.t < 0

    def tensors(self) -> list[torch.Tensor]:
        return [tensor for tensor in (self.x, self.previous_x0) if tensor is not None]

    @property
    def size_bytes(self) -> int:
        """What keeping this state costs: its tensors' storage and the RNG bytes."""
        storage = sum(tensor.untyped_storage().nbytes() for tensor in self.tensors())
        return storage + (self.noise.size_bytes if self.noise is not None else 0)

    def to(self, device) -> SamplerState:
        previous = None if self.previous_x0 is None else self.previous_x0.to(device)
        return replace(self, x=self.x.to(device), previous_x0=previous)

    def check_continues(self, sampler: str, diffusion: Diffusion) -> None:
        """Refuse a state from another sampler (its history means something else) or another chain."""
        if self.sampler != sampler:
            raise DiffusionError(f"a {self.sampler} state cannot continue with the {sampler} sampler")
        if self.chain != chain_key(diffusion) or not -1 <= self.t < diffusion.num_steps:
            raise DiffusionError(f"the state belongs to another chain than this {diffusion.num_steps}-step one")


def own(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """The tensor, copied if it is a view into a larger buffer, so a kept state never pins more memory
    (a whole batch, another step's buffers) than its own values."""
    if tensor is None or tensor.untyped_storage().nbytes() == tensor.nbytes:
        return tensor
    return tensor.clone()
