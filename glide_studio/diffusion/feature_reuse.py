"""Feature reuse across steps (DeepCache's idea, training-free), as a wrapper around the network.

A UNet's deep features change slowly from one denoising step to the next; its shallow branch (the outermost
skip connection's blocks) carries the detail. So on a full step the network also hands back its deep
features, and for the next `interval - 1` steps only the shallow branch runs, on those features.

The wrapper's decisions depend only on the step's position in the stage, the last full step's position and
the rows of the call, never on wall time, so a run is reproducible. Its state between steps is the input of
the last full step (`ReuseAnchor`), which is small (an x_t, not a feature map): a resumed run rebuilds the
deep features from it, under the resuming run's conditioning, and so continues bit for bit as if it had never
stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

ReusingNetwork = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""`network(x, model_timesteps, deep=None, **model_kwargs) -> (output, deep)`: in full without `deep` (also
returning its deep features), only its shallow branch on the given `deep` features otherwise."""


@dataclass(frozen=True)
class ReuseAnchor:
    """The last full step of a stage: its position (0-based, within the stage) and the network's input."""

    step: int
    x: torch.Tensor
    timesteps: torch.Tensor

    @property
    def size_bytes(self) -> int:
        return self.x.nbytes + self.timesteps.nbytes

    def to(self, device) -> ReuseAnchor:
        return ReuseAnchor(self.step, self.x.to(device), self.timesteps.to(device))


class FeatureReuse:
    """A denoiser that runs `network` in full every `interval` steps and its shallow branch in between.

    A step is full when no deep features are at hand, when `interval` steps have passed since the last full
    one, when the call's rows differ from that step's (the guidance interval switches between the CFG
    batch and the conditional half), or when its noise level is outside [`lowest_timestep`, `highest_timestep`]
    (below: the late steps draw the fine detail; above: the early steps lay out the fill, which stale deep
    features can leave inconsistent with the picture around it). `first_step` and `anchor` continue a stage from
    a saved state.
    """

    def __init__(self, network: ReusingNetwork, interval: int, *, first_step: int = 0,
                 anchor: ReuseAnchor | None = None, lowest_timestep: float = 0.0,
                 highest_timestep: float = float("inf")):
        if interval < 1:
            raise ValueError(f"the reuse interval must be at least 1, got {interval}")
        self.network, self.interval = network, interval
        self.lowest_timestep, self.highest_timestep = lowest_timestep, highest_timestep
        self.step = first_step
        self.anchor = anchor
        self.full_steps: list[int] = []
        """The stage positions of the steps this wrapper ran in full (benchmarks count them)."""
        self._deep: torch.Tensor | None = None

    def reuses(self, step: int, x: torch.Tensor, timesteps: torch.Tensor) -> bool:
        anchor = self.anchor
        return (anchor is not None and step - anchor.step < self.interval and anchor.x.shape == x.shape
                and self.lowest_timestep <= float(timesteps[0]) <= self.highest_timestep)

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, **model_kwargs) -> torch.Tensor:
        step, self.step = self.step, self.step + 1
        if self.reuses(step, x, timesteps):
            if self._deep is None:  # resumed: the anchor's features, as the full step computed them
                _, self._deep = self.network(self.anchor.x, self.anchor.timesteps, **model_kwargs)
            output, _ = self.network(x, timesteps, deep=self._deep, **model_kwargs)
            return output
        output, self._deep = self.network(x, timesteps, **model_kwargs)
        # The samplers never write into x in place, so holding the tensor itself is safe.
        self.anchor = ReuseAnchor(step, x, timesteps)
        self.full_steps.append(step)
        return output

    def carried(self) -> ReuseAnchor | None:
        """What a state after the latest step must keep: the anchor while the next step may still reuse it."""
        anchor = self.anchor
        if anchor is None or self.step - anchor.step >= self.interval:
            return None
        return anchor
