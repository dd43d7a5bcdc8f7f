"""Tiny random GLIGEN components, built in the test and saved as a user's diffusers folder: a UNet with gated
self-attention and its position net (4 channels for generation, 9 for GLIGEN's inpainting layout), the tiny VAE,
CLIP text model and tokenizer of sd_helpers."""

from __future__ import annotations

from pathlib import Path

import torch
from sd_helpers import tiny_components, write_folder


def tiny_gligen_unet(seed: int = 0, in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, attention_type="gated")
    # GLIGEN's gates start closed (tanh(0) = 0); a trained model's are open, so open them to make the boxes count.
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")):
                parameter.fill_(1.0)
    return unet.eval()


def save_gligen_folder(folder: Path, seed: int = 0, in_channels: int = 4) -> Path:
    parts = tiny_components(seed, 4)
    parts["unet"] = tiny_gligen_unet(seed, in_channels)
    return write_folder(folder, parts, "StableDiffusionGLIGENPipeline")
