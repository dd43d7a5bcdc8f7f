"""Small building blocks shared by the GLIDE networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding, cos first, computed in float32 exactly as the reference does."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32) computed in float32 whatever the activations' dtype, optionally followed by SiLU."""

    def __init__(self, channels: int, silu: bool = False):
        super().__init__(32, channels, eps=1e-5)
        self.silu = silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16 and x.device.type == "cpu":
            # The CPU kernel keeps float32 statistics for bf16 input itself; skipping the float copy of the
            # activations makes the fast path's norms 3x cheaper.
            y = F.group_norm(x, self.num_groups, self.weight.float(), self.bias.float(), self.eps)
            return F.silu(y) if self.silu else y
        y = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        if self.silu:
            y = F.silu(y)
        return y.to(x.dtype)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (the text transformer's norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return y.to(x.dtype)


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Softmax attention over (..., T, d) tensors with the 1/sqrt(d) scale.

    The reference scales q and k by d^-1/4 each and takes the softmax in float32; the fused kernel computes
    the same quantity. Low-precision inputs are upcast for the softmax by the kernel itself.
    """
    if q.dim() == 3:
        # torch's CPU flash kernel takes only 4-d inputs with unit stride along d; others fall to the unfused
        # math path, 3x slower. The copies cost a few percent of that.
        q, k, v = (t[None].contiguous() for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)[0]
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
