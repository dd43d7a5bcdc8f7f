"""GLIDE networks written by us: they load OpenAI's checkpoints unchanged (same names and shapes)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import CLIPConfig, UNetConfig
from .noised_clip import CLIPImageEncoder, CLIPTextEncoder, normalize_embedding
from .precision import Precision, choose_precision, convert_unet_to_fp16, prepare_model
from .unet import GlideUNet
from .weights import WeightsError, check_state_dict, load_weights, read_state_dict

__all__ = [
    "CLIPImageEncoder", "CLIPTextEncoder", "GlideUNet", "Precision", "WeightsError", "build_clip_image_encoder",
    "build_clip_text_encoder", "build_model", "check_state_dict", "choose_precision", "convert_unet_to_fp16",
    "load_weights", "normalize_embedding", "prepare_model", "read_state_dict",
]


def _on(device: str | torch.device | None):
    return torch.device(device) if device is not None else torch.device("cpu")


def build_model(options: dict[str, Any] | UNetConfig, device: str | torch.device | None = None) -> GlideUNet:
    """Build a GLIDE UNet from an official options dict (or our config), in eval mode.

    ``device="meta"`` builds the full architecture without allocating memory.
    """
    config = options if isinstance(options, UNetConfig) else UNetConfig.from_options(options)
    with torch.device(_on(device)):
        model = GlideUNet(config)
    return model.eval()


def build_clip_image_encoder(options: dict[str, Any] | CLIPConfig,
                             device: str | torch.device | None = None) -> CLIPImageEncoder:
    config = options if isinstance(options, CLIPConfig) else CLIPConfig.from_options(options)
    with torch.device(_on(device)):
        return CLIPImageEncoder(config).eval()


def build_clip_text_encoder(options: dict[str, Any] | CLIPConfig,
                            device: str | torch.device | None = None) -> CLIPTextEncoder:
    config = options if isinstance(options, CLIPConfig) else CLIPConfig.from_options(options)
    with torch.device(_on(device)):
        return CLIPTextEncoder(config).eval()
