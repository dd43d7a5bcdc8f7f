"""Stable unCLIP: a UNet conditioned on a picture's CLIP image embedding, for "Variations of this box".

An unCLIP model's UNet has a projection class embedding (`class_embed_type="projection"`) whose input is the image
embedding followed by a sinusoidal embedding of the noise level it was augmented with. The recipe is Stable unCLIP
img2img's: the box's CLIP image embedding, normalised by the model's image normalizer (the embedder's mean and
standard deviation), noised to `NOISE_LEVEL` by its own noising schedule, un-normalised, the noise level's
embedding appended; zeros for the negative half of classifier-free guidance. Sampling starts from pure noise, so
each candidate (its own seed) is another variation of the same picture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glide_studio.sd.components import SDModelSet
from glide_studio.sd.errors import SDError, SDModelError
from glide_studio.sd.image_encoder import image_embedding

NOISE_LEVEL = 0
"""How much the image embedding is noised (0 to 999): diffusers' default for Stable unCLIP img2img, the closest
variations; the candidates differ by their seeds."""

PARTS = ("image_encoder", "image_normalizer", "image_noising_scheduler")


@dataclass
class UnCLIPParts:
    image_encoder: Any
    """A `CLIPVisionModelWithProjection`."""
    normalizer: Any
    """A `StableUnCLIPImageNormalizer`: the embedding's mean and std."""
    noising_scheduler: Any
    """A `DDPMScheduler`: the noise-augmentation schedule of the embedding."""


def is_unclip_folder(folder: Path) -> bool:
    return (folder / "image_normalizer").is_dir()


def load_parts(folder: Path) -> UnCLIPParts:
    """The unCLIP components of a diffusers folder, from safetensors."""
    from diffusers import DDPMScheduler
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPVisionModelWithProjection

    missing = [name for name in PARTS if not (folder / name).is_dir()]
    if missing:
        raise SDModelError(f"{folder} is an unCLIP model without its {', '.join(missing)}")
    try:
        return UnCLIPParts(
            CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", use_safetensors=True),
            StableUnCLIPImageNormalizer.from_pretrained(folder, subfolder="image_normalizer", use_safetensors=True),
            DDPMScheduler.from_pretrained(folder, subfolder="image_noising_scheduler"),
        )
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise SDModelError(f"{folder}'s unCLIP components could not be read: {error}") from error


def to_device(parts: UnCLIPParts, device, dtype) -> UnCLIPParts:
    parts.image_encoder = parts.image_encoder.to(device, dtype).eval()
    parts.normalizer = parts.normalizer.to(device, torch.float32).eval()
    return parts


def _noise_level_embedding(levels: torch.Tensor, width: int) -> torch.Tensor:
    """The sinusoidal embedding of the noise level (cosines first), as the model was trained with."""
    from diffusers.models.embeddings import get_timestep_embedding

    return get_timestep_embedding(levels, width, flip_sin_to_cos=True, downscale_freq_shift=0)


@torch.no_grad()
def class_labels(models: SDModelSet, picture: np.ndarray | None, generators: list[torch.Generator],
                 guided: bool, noise_level: int = NOISE_LEVEL) -> torch.Tensor | None:
    """The UNet's class labels for an unCLIP model ((2B or B, 2D): zeros, then each candidate's noised embedding of
    `picture`), drawing each candidate's augmentation noise from its own generator; None for other models."""
    parts = getattr(models, "unclip", None)
    if parts is None:
        return None
    if picture is None:
        raise SDError("an unCLIP model makes variations of a picture: open one and place the edit box on the region")
    embedding = image_embedding(parts.image_encoder, picture).float()
    noise = torch.cat([torch.randn(embedding.shape, generator=generator) for generator in generators])
    embeddings = embedding.expand(len(generators), -1).to(noise.device)
    levels = torch.full((len(generators),), int(noise_level), dtype=torch.long)
    scheduler = parts.noising_scheduler
    normalizer = parts.normalizer
    mean, std = normalizer.mean.detach().float().cpu(), normalizer.std.detach().float().cpu()
    noised = scheduler.add_noise((embeddings - mean) / std, noise, levels) * std + mean
    labels = torch.cat([noised, _noise_level_embedding(levels, noised.shape[-1]).float()], dim=1)
    if guided:
        labels = torch.cat([torch.zeros_like(labels), labels])
    return labels.to(models.device, models.unet_dtype)
