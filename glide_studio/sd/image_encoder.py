"""A CLIP image encoder's view of a picture: the pixels it expects and the embedding it gives (IP-Adapter's
reference pictures, unCLIP's edit box)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""The normalisation every OpenAI / OpenCLIP image encoder was trained with (CLIPImageProcessor's defaults)."""


def encoder_pixels(picture: np.ndarray, side: int) -> torch.Tensor:
    """(1, 3, side, side) normalised as CLIP expects: the shorter side resized to `side` (bicubic), centre-cropped."""
    image = Image.fromarray(np.ascontiguousarray(picture[..., :3], dtype=np.uint8))
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    mean, std = torch.tensor(CLIP_MEAN)[None, :, None, None], torch.tensor(CLIP_STD)[None, :, None, None]
    return (pixels - mean) / std


@torch.no_grad()
def image_embedding(encoder, picture: np.ndarray) -> torch.Tensor:
    """The encoder's projected image embedding (1, D)."""
    pixels = encoder_pixels(picture, int(encoder.config.image_size)).to(encoder.device, encoder.dtype)
    return encoder(pixels).image_embeds
