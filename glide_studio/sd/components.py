"""A loaded Stable Diffusion model: its diffusers components on their device, and what the pipeline needs to
know about them (latent size, inpainting or not, the latent -> RGB preview projection, its hash)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from glide_studio.models.precision import Precision
from glide_studio.pipelines.request import Family


@dataclass
class SDModelSet:
    """unet: a `UNet2DConditionModel` (9 input channels for an inpainting checkpoint, 4 otherwise); vae: an
    `AutoencoderKL`; text_encoder / tokenizer: CLIP's; scheduler_config: the model's own scheduler settings
    (beta schedule, prediction type), which every sampler is built from.

    `unet_dtype` is what the UNet and text encoder run in (fp16 on CUDA, bf16 or fp32 on CPU); the VAE and the
    sampler's arithmetic stay float32. `preview_weight` (C, 3) and `preview_bias` (3) project a latent to RGB in
    [-1, 1] for the per-step preview (see `preview.fit_projection`)."""

    name: str
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    precision: Precision
    preview_weight: torch.Tensor
    preview_bias: torch.Tensor
    model_hash: str = ""
    """A1111's short model hash: the first 10 hex digits of the weights file's SHA-256 ("" when unknown)."""
    source: str = ""
    """Where it was loaded from (a folder or a file), for messages."""
    unclip: Any = None
    """An unCLIP model's image encoder, normalizer and embedding noise schedule (`unclip.UnCLIPParts`), else None."""
    ip_adapter: Any = None
    """The IP-Adapter installed in the UNet with its image encoder (`ip_adapter.LoadedIPAdapter`), else None."""
    sdxl: Any = None
    """An SDXL model's second text encoder and its pipeline's flags (`sdxl.SDXLParts`), else None."""
    preview_decoder: Any = None
    """TAESD (`AutoencoderTiny`) for full-resolution step previews when the user has it, else None (`taesd.py`)."""
    family: Family = field(default=Family.SD, init=False)

    @property
    def device(self) -> torch.device:
        return self.precision.device

    @property
    def unet_dtype(self) -> torch.dtype:
        return self.precision.autocast_dtype or (torch.float16 if self.precision.fp16_weights else torch.float32)

    @property
    def vae_scale(self) -> int:
        """Pixels per latent pixel."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def inpainting(self) -> bool:
        """An inpainting UNet sees the mask and the masked picture's latents beside the noisy latent."""
        return int(self.unet.config.in_channels) == 2 * self.latent_channels + 1

    @property
    def model_size(self) -> int:
        """The square size in pixels the model was trained at (512 for SD 1.x inpainting)."""
        return int(self.unet.config.sample_size) * self.vae_scale

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)
