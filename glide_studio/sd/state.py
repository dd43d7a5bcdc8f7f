"""A Stable Diffusion run between two steps, as data: the latent, the scheduler's changing state and each
candidate's noise generator. `run(models, request, resume=state)` continues from it, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from glide_studio.sd.schedulers import map_tensors


@dataclass(frozen=True)
class SDRunState:
    """After `index` steps (0-based count of steps done) of a `mode` run of the `chain` (scheduler, steps,
    strength and latent shape: a state continues only its own chain). `latents` is the scheduler's sample
    (N, C, h, w); `generators` the CPU RNG state of each candidate's generator."""

    mode: str
    chain: str
    index: int
    latents: torch.Tensor
    scheduler: dict
    generators: tuple[torch.Tensor, ...]
    start_image: np.ndarray | None = None
    """Sketch to image: the picture with its strokes at model size that the run started from (one array shared by
    the run's states: do not write to it), so a resumed run sees which pixels were painted since."""
    stage: str = "base"
    stage_number: int = 0

    @property
    def size_bytes(self) -> int:
        tensors: list[torch.Tensor] = []
        map_tensors([self.latents, self.scheduler, list(self.generators)], lambda tensor: tensors.append(tensor))
        pixels = 0 if self.start_image is None else self.start_image.nbytes
        return sum(tensor.untyped_storage().nbytes() for tensor in tensors) + pixels

    def to(self, device) -> SDRunState:
        return replace(self, latents=self.latents.to(device),
                       scheduler=map_tensors(self.scheduler, lambda tensor: tensor.to(device)))
