"""Explicit sources of Gaussian noise, so any sampling run can be reproduced or replayed draw by draw."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from glide_studio.diffusion.errors import DiffusionError


class NoiseSource:
    """Hands out standard-normal tensors in call order. Build one with `from_generator` or `from_recorded`."""

    def draw(self, shape, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        raise NotImplementedError

    @staticmethod
    def from_generator(generator: torch.Generator) -> NoiseSource:
        return GeneratorNoise(generator)

    @staticmethod
    def from_recorded(draws: Iterable[torch.Tensor]) -> NoiseSource:
        return RecordedNoise(draws)


class GeneratorNoise(NoiseSource):
    """Draws float32 noise on the generator's device, then moves it, so a CPU seed gives the same
    numbers whatever device the model runs on."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.draws = 0

    def draw(self, shape, device="cpu", dtype=torch.float32):
        self.draws += 1
        values = torch.randn(tuple(shape), generator=self.generator, device=self.generator.device,
                             dtype=torch.float32)
        return values.to(device=device, dtype=dtype)


class RecordedNoise(NoiseSource):
    """Replays previously drawn tensors in order; a shape mismatch or running out is an error."""

    def __init__(self, draws: Iterable[torch.Tensor]):
        self._draws = list(draws)
        self.draws = 0

    @property
    def remaining(self) -> int:
        return len(self._draws) - self.draws

    def draw(self, shape, device="cpu", dtype=torch.float32):
        if self.draws >= len(self._draws):
            raise DiffusionError(f"recorded noise exhausted after {len(self._draws)} draws")
        value = self._draws[self.draws]
        if tuple(value.shape) != tuple(shape):
            raise DiffusionError(
                f"recorded draw {self.draws} has shape {tuple(value.shape)}, "
                f"the sampler asked for {tuple(shape)}"
            )
        self.draws += 1
        return value.to(device=device, dtype=dtype)
