"""Turning a registry name into a ready network: find the file, verify it, build, load strictly.

The one place that knows how a checkpoint becomes a module, for the app and the command line alike.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models import WeightsError, build_clip_image_encoder, build_clip_text_encoder, build_model, load_weights
from .errors import CheckpointFormatError
from .registry import CacheArg, demo_options, get_spec
from .store import checkpoint_options, ensure_checkpoint

_BUILDERS = {"unet": build_model, "clip-image": build_clip_image_encoder, "clip-text": build_clip_text_encoder}


def network_options(name: str) -> dict:
    spec = get_spec(name)
    return demo_options(name) if spec.source == "demo" else checkpoint_options(name)


def load_network(name: str, device: str | torch.device = "cpu", *, offline: bool = True,
                 cache: CacheArg = None) -> nn.Module:
    """The named network in eval mode on ``device`` (fp32).

    Raises MissingWeightsError / OfflineError when the file is not here (``offline=False`` downloads
    it), IntegrityError when it was tampered with, CheckpointFormatError when it does not fit.
    """
    spec = get_spec(name)
    path: Path = ensure_checkpoint(name, offline=offline, cache=cache)
    # UNets have no buffers, so they can be built on the meta device and take the file's tensors
    # directly: one copy of the weights in memory instead of two.
    build_on = "meta" if spec.kind == "unet" else "cpu"
    model = _BUILDERS[spec.kind](network_options(name), device=build_on)
    try:
        load_weights(model, path)
    except WeightsError as error:
        raise CheckpointFormatError(f"{name}: {error}") from error
    return model.to(device).eval()
