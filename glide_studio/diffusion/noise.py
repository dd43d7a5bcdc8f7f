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
    rows: int = 1
    """How many generators `rng` holds, one after another (one per batch row, or one for the whole draw)."""

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
    def per_row(generators: Iterable[torch.Generator]) -> NoiseSource:
        """Row i of every draw from generator i alone: a batch's candidate i gets the same noise as a run of that
        candidate by itself with generator i's seed."""
        return GeneratorNoise(*generators)

    @staticmethod
    def from_recorded(draws: Iterable[torch.Tensor]) -> NoiseSource:
        return RecordedNoise(draws)

    @staticmethod
    def from_state(state: NoiseState, recorded: Iterable[torch.Tensor] | None = None) -> NoiseSource:
        """A new source at `state`: a fresh generator for a generator's state; replayed noise needs its
        `recorded` draws, which a state does not carry (they are the whole run's noise)."""
        if state.kind == "generator":
            generators = [torch.Generator(device=state.device) for _ in range(state.rows)]
            return GeneratorNoise(*generators).restore(state)
        if recorded is None:
            raise DiffusionError("restoring recorded noise needs the recorded draws")
        return RecordedNoise(recorded).restore(state)


class GeneratorNoise(NoiseSource):
    """Draws float32 noise on the generators' device, then moves it, so a CPU seed gives the same numbers
    whatever device the model runs on. One generator draws whole tensors; several draw one batch row each (row i
    from generator i, in order), so that a row's noise does not depend on how many rows are drawn with it."""

    def __init__(self, generator: torch.Generator, *more: torch.Generator):
        self.generators = (generator, *more)
        self.draws = 0

    def draw(self, shape, device="cpu", dtype=torch.float32):
        shape = tuple(shape)
        if len(self.generators) > 1 and (not shape or shape[0] != len(self.generators)):
            raise DiffusionError(f"{len(self.generators)} per-row generators cannot draw a tensor of shape {shape}")
        self.draws += 1
        rows = [self._randn(generator, shape if len(self.generators) == 1 else (1, *shape[1:]))
                for generator in self.generators]
        values = rows[0] if len(rows) == 1 else torch.cat(rows)
        return values.to(device=device, dtype=dtype)

    @staticmethod
    def _randn(generator: torch.Generator, shape) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)

    def state(self) -> NoiseState:
        rng = b"".join(bytes(generator.get_state().numpy()) for generator in self.generators)
        return NoiseState("generator", self.draws, rng, str(self.generators[0].device), len(self.generators))

    def restore(self, state: NoiseState) -> GeneratorNoise:
        if state.kind != "generator" or state.rng is None:
            raise DiffusionError(f"a generator cannot take the state of {state.kind} noise")
        if state.rows != len(self.generators) or len(state.rng) % state.rows:
            raise DiffusionError(f"the state holds {state.rows} generators; this source has {len(self.generators)}")
        size = len(state.rng) // state.rows
        for number, generator in enumerate(self.generators):
            chunk = bytearray(state.rng[number * size:(number + 1) * size])
            generator.set_state(torch.frombuffer(chunk, dtype=torch.uint8))
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
