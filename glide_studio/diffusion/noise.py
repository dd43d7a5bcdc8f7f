"""Explicit sources of Gaussian noise, so any sampling run can be reproduced or replayed draw by draw."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from glide_studio.diffusion.errors import DiffusionError


@dataclass(frozen=True)
class NoiseState:
    """Where a noise source is: how many draws it has handed out and, for a generator, its RNG state as
    immutable bytes (a few KB on CPU), so a paused run's noise continues exactly where it stopped."""

    kind: str
    """"generator" or "recorded"."""
    draws: int
    rng: bytes | None = None
    device: str = "cpu"

    @property
    def size_bytes(self) -> int:
        return len(self.rng or b"")


class NoiseSource:
    """Hands out standard-normal tensors in call order. Build one with `from_generator` or `from_recorded`,
    or, to continue a paused run, `from_state` (or `restore` on a recorded source)."""

    draws: int

    def draw(self, shape, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        raise NotImplementedError

    def state(self) -> NoiseState | None:
        """Where the source is now; None for a source that cannot say (a run paused on one resumes only
        with a source its caller has put in the same place)."""
        return None

    def restore(self, state: NoiseState) -> NoiseSource:
        """Move this source to `state` (in place) and return it."""
        raise NotImplementedError

    @staticmethod
    def from_generator(generator: torch.Generator) -> NoiseSource:
        return GeneratorNoise(generator)

    @staticmethod
    def from_recorded(draws: Iterable[torch.Tensor]) -> NoiseSource:
        return RecordedNoise(draws)

    @staticmethod
    def from_state(state: NoiseState, recorded: Iterable[torch.Tensor] | None = None) -> NoiseSource:
        """A new source at `state`: a fresh generator for a generator's state; replayed noise needs its
        `recorded` draws, which a state does not carry (they are the whole run's noise)."""
        if state.kind == "generator":
            return GeneratorNoise(torch.Generator(device=state.device)).restore(state)
        if recorded is None:
            raise DiffusionError("restoring recorded noise needs the recorded draws")
        return RecordedNoise(recorded).restore(state)


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

    def state(self) -> NoiseState:
        rng = bytes(self.generator.get_state().numpy())
        return NoiseState("generator", self.draws, rng, str(self.generator.device))

    def restore(self, state: NoiseState) -> GeneratorNoise:
        if state.kind != "generator" or state.rng is None:
            raise DiffusionError(f"a generator cannot take the state of {state.kind} noise")
        self.generator.set_state(torch.frombuffer(bytearray(state.rng), dtype=torch.uint8))
        self.draws = state.draws
        return self


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

    def state(self) -> NoiseState:
        return NoiseState("recorded", self.draws)

    def restore(self, state: NoiseState) -> RecordedNoise:
        if state.kind != "recorded":
            raise DiffusionError(f"recorded noise cannot take the state of {state.kind} noise")
        if not 0 <= state.draws <= len(self._draws):
            raise DiffusionError(f"the state is at draw {state.draws}; only {len(self._draws)} are recorded")
        self.draws = state.draws
        return self
