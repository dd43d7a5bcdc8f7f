"""A stand-in engine: yields Steps shaped like the real pipelines' without any network.

Used by the tests and by `--fake-engine` to try the interface without weights. Its inpaint result
keeps every unmasked pixel, paints the mask with a colour taken from the prompt, and varies per candidate.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from glide_studio.app.engine import ModelChoice
from glide_studio.pipelines.request import Mode, Request, Step
from glide_studio.runs.record import RunContext


@dataclass(frozen=True)
class FakeState:
    """What the fake needs to go on: the next step and its noise generator's state."""

    next_index: int
    rng: torch.Tensor

    def to(self, _device) -> FakeState:
        return self

    @property
    def size_bytes(self) -> int:
        return int(self.rng.numel())


class FakeEngine:
    def __init__(self, step_delay: float = 0.02, preview_size: int = 16, fail_with: Exception | None = None):
        self.step_delay = step_delay
        self.preview_size = preview_size
        self.fail_with = fail_with
        self.steps_computed = 0
        self.loaded: list[tuple[str, str]] = []
        self.prepared: list[tuple[str, str]] = []
        self.prepare_error: Exception | None = None
        self.requests: list[Request] = []
        self.closed_runs = 0
        self.run_threads: list[threading.Thread] = []
        self.scores: tuple = ()
        self.compile = False
        """What `score` answers (tests set CandidateScores to check the ranking)."""

    def devices(self) -> list[str]:
        return ["cpu"]

    def model_choices(self) -> list[ModelChoice]:
        return [
            ModelChoice("demo", "Demo (fake)", True),
            ModelChoice("glide", "GLIDE", False, "not downloaded"),
        ]

    def load_models(self, request: Request, device: str) -> None:
        self.loaded.append((request.base_model, device))

    def prepare(self, request: Request, device: str) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error
        self.load_models(request, device)
        self.prepared.append((request.base_model, device))

    def context(self) -> RunContext:
        return RunContext("cpu", "fp32", {"fake_engine": "1"})

    def set_compile(self, on: bool) -> None:
        self.compile = bool(on)

    def score(self, request: Request, images) -> tuple:
        return tuple(self.scores[:len(images)])

    def run(self, request: Request, resume: object | None = None) -> Iterator[Step]:
        """`resume` is a FakeState that one of its steps carried."""
        self.requests.append(request)
        return self._steps(request, resume)

    def _steps(self, request: Request, resume: object | None = None) -> Iterator[Step]:
        self.run_threads.append(threading.current_thread())
        generator = torch.Generator().manual_seed(request.seed)
        first = 0
        if resume is not None:
            first = resume.next_index
            generator.set_state(resume.rng)
        side = self.preview_size
        target = self._results(request)
        small = torch.from_numpy(
            target[:, :: max(1, target.shape[1] // side), :: max(1, target.shape[2] // side)]
        )
        small = small[:, :side, :side].permute(0, 3, 1, 2).float() / 127.5 - 1
        try:
            for index in range(first, request.steps):
                if self.fail_with is not None and index == 1:
                    raise self.fail_with
                time.sleep(self.step_delay)
                self.steps_computed += 1
                blend = (index + 1) / request.steps
                noise = torch.randn(small.shape, generator=generator)
                x_t = blend * small + (1 - blend) * noise
                last = index == request.steps - 1
                yield Step(index, request.steps, "base", x_t, blend * small, target if last else None,
                           state=FakeState(index + 1, generator.get_state()))
        finally:
            self.closed_runs += 1

    def _results(self, request: Request) -> np.ndarray:
        if request.image is not None:
            picture = request.image
        else:
            picture = np.full((64, 64, 3), 128, np.uint8)
        results = np.repeat(picture[None], request.batch, axis=0).copy()
        if request.mode == Mode.GENERATE:
            region = np.ones(picture.shape[:2], bool)
        elif request.mask is not None:
            region = np.asarray(request.mask) > 0
        else:
            region = np.zeros(picture.shape[:2], bool)
        hue = zlib.crc32(request.prompt.encode()) & 0xFFFFFF
        for candidate in range(request.batch):
            colour = np.array([(hue >> 16) & 255, (hue >> 8) & 255, hue & 255], np.uint8)
            colour = (colour.astype(int) + 60 * candidate) % 256
            results[candidate][region] = colour.astype(np.uint8)
        return results
