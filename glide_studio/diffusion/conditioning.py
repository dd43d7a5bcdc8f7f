"""What steers a sampler's steps besides the denoiser itself, in one object that every sampler takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from glide_studio.diffusion.gaussian import DenoisedFn

CondFn = Callable[..., torch.Tensor]
"""`cond_fn(x, model_timesteps, **model_kwargs)` -> a gradient on x (CLIP guidance)."""


@dataclass(frozen=True)
class Conditioning:
    """The hooks of a sampling run.

    model_kwargs:  passed to the denoiser (and to cond_fn) at every step: text embedding, inpaint inputs, low_res.
    denoised_fn:   applied to the predicted x0 before the clamp ("paste the known pixels").
    cond_fn:       a guidance gradient; the ancestral sampler shifts the mean by it, the others the score.
    clip_denoised: clamp the predicted x0 to [-1, 1].
    """

    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    denoised_fn: DenoisedFn | None = None
    cond_fn: CondFn | None = None
    clip_denoised: bool = True


UNCONDITIONED = Conditioning()
