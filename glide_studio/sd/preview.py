"""The cheap per-step preview: a linear projection of the latent's channels to RGB.

Every SD front-end shows such an approximation while sampling; we do not ship a table of numbers for it, we fit
it to the model's own VAE when the model loads: flat colour patches are encoded, and a least-squares fit maps
their mean latents back to their colours. It costs one small VAE encode per model, and it fits any VAE (SD 1.x,
2.x, a fine-tuned one, the tiny test ones) without a table per family."""

from __future__ import annotations

import itertools

import torch

PATCH_LATENT_SIZE = 8
"""Each colour patch is this many latent pixels square (the VAE's edges matter less at the centre)."""
LEVELS = (-0.8, 0.0, 0.8)


@torch.no_grad()
def fit_projection(vae, vae_scale: int, scaling_factor: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (C, 3), bias (3,)) such that `latent_channels @ weight + bias` approximates the decoded RGB."""
    colours = torch.tensor(list(itertools.product(LEVELS, repeat=3)), dtype=torch.float32)
    side = PATCH_LATENT_SIZE * vae_scale
    patches = colours[:, :, None, None].expand(-1, -1, side, side).contiguous().to(device)
    latents = vae.encode(patches.to(vae.dtype)).latent_dist.mean.float() * scaling_factor
    centre = latents[:, :, 2:-2, 2:-2].mean(dim=(2, 3)).cpu()
    design = torch.cat([centre, torch.ones(len(colours), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, colours.double()).solution.float()
    return solution[:-1].contiguous(), solution[-1].contiguous()


def project(latents: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) latents -> (N, 3, h, w) RGB in [-1, 1]."""
    weight, bias = weight.to(latents.device), bias.to(latents.device)
    rgb = torch.einsum("nchw,cr->nrhw", latents.float(), weight) + bias[None, :, None, None]
    return rgb.clamp(-1, 1)
