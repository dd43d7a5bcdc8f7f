"""Turning a step's tensors into small uint8 CPU images, on the worker thread."""

from __future__ import annotations

import numpy as np


def to_uint8_images(batch, max_side: int = 256) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1], torch or numpy on any device -> (N, h, w, 3) uint8, max(h, w) <= max_side."""
    if hasattr(batch, "detach"):
        import torch

        tensor = batch.detach()
        if tensor.ndim == 3:
            tensor = tensor[None]
        side = max(tensor.shape[-2:])
        if side > max_side:
            factor = -(-side // max_side)
            tensor = torch.nn.functional.avg_pool2d(tensor.float(), factor)
        pixels = tensor.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).cpu().numpy())
    array = np.asarray(batch, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    side = max(array.shape[-2:])
    if side > max_side:
        factor = -(-side // max_side)
        array = array[..., ::factor, ::factor]
    pixels = np.round((np.clip(array, -1, 1) + 1) * 127.5).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
