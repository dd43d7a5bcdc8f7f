"""A whole run's state between two steps: which stage, that stage's sampler state, and what the stage needs
besides (the previous stage's result, the upsampler's low_res). `run(models, request, resume=state)`
continues from it; the request may differ in its conditioning (prompt, mask), which is recomputed from it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from glide_studio.diffusion import SamplerState
from glide_studio.diffusion.feature_reuse import ReuseAnchor


@dataclass(frozen=True)
class RunState:
    """The run after a step of its `stage` (the `stage_number`-th, 0-based) of a `mode` run.

    `previous` is the uint8 result (N, H, W, 3) of the stage before, which this stage starts from (None in a
    run's first stage); every state of one stage shares that one array, so do not write to it. Tensors stay on
    the run's device; `to("cpu")` before keeping many.
    """

    mode: str
    stage: str
    stage_number: int
    sampler: SamplerState
    previous: np.ndarray | None = None
    reuse_anchor: ReuseAnchor | None = None
    """The last full network step of a feature-reusing stage, while the next step may still reuse it."""
    level: float | None = None
    """How noisy the stage's x is now, as a strength (1: pure noise, 0: done), where the stage knows it: what the
    strength scrubber picks a stored step by."""

    @property
    def size_bytes(self) -> int:
        """What keeping this state costs (`previous` counted in full, though states of a stage share it)."""
        anchor = 0 if self.reuse_anchor is None else self.reuse_anchor.size_bytes
        return self.sampler.size_bytes + (0 if self.previous is None else self.previous.nbytes) + anchor

    def to(self, device) -> RunState:
        anchor = None if self.reuse_anchor is None else self.reuse_anchor.to(device)
        return replace(self, sampler=self.sampler.to(device), reuse_anchor=anchor)
