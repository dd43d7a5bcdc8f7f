"""Training losses for a learned-range GLIDE denoiser: eps MSE plus the improved-DDPM variational bound.

The variational-bound term sees the predicted eps through a stop-gradient, so it trains only the variance
channels and the MSE alone shapes the mean (Nichol & Dhariwal's L_hybrid).
"""

from __future__ import annotations

import math

import torch

from glide_studio.diffusion.gaussian import Denoiser, Diffusion


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-probability of 8-bit data x in [-1, 1] under a Gaussian integrated over each pixel's bin.

    The bins at -1 and 1 extend to infinity. Uses the exact normal CDF (upper tail computed directly so
    small probabilities do not cancel).
    """
    centered = x - means
    inv_std = torch.exp(-log_scales)
    upper = inv_std * (centered + 1.0 / 255.0)
    lower = inv_std * (centered - 1.0 / 255.0)
    cdf_upper = torch.special.ndtr(upper)
    survival_lower = torch.special.ndtr(-lower)
    bin_mass = cdf_upper - torch.special.ndtr(lower)
    log_low_edge = torch.log(cdf_upper.clamp(min=1e-12))
    log_high_edge = torch.log(survival_lower.clamp(min=1e-12))
    log_mid = torch.log(bin_mass.clamp(min=1e-12))
    return torch.where(x < -0.999, log_low_edge, torch.where(x > 0.999, log_high_edge, log_mid))


def _mean_flat(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.mean(dim=list(range(1, tensor.dim())))


def training_losses(denoiser: Denoiser, diffusion: Diffusion, x0: torch.Tensor, t: torch.Tensor,
                    noise: torch.Tensor | None = None, model_kwargs: dict | None = None,
                    ) -> dict[str, torch.Tensor]:
    """Per-sample losses at respaced indices t: {"mse", "vb", "loss"} each of shape (B,).

    "vb" is in bits per dimension and is rescaled by num_steps / 1000 (so a respaced training chain
    weighs it as the full one would); "loss" = mse + vb.
    """
    if noise is None:
        noise = torch.randn_like(x0)
    x_t = diffusion.q_sample(x0, t, noise)
    output = denoiser(x_t, diffusion.model_timesteps(t), **(model_kwargs or {}))
    channels = x0.shape[1]
    eps = output[:, :channels]
    mse = _mean_flat((noise - eps) ** 2)

    frozen = torch.cat([eps.detach(), output[:, channels:]], dim=1)
    predicted = diffusion.output_to_mean_variance(frozen, x_t, t, clip_denoised=False)
    true_mean, _, true_log_variance = diffusion.q_posterior_mean_variance(x0, x_t, t)
    kl = _mean_flat(normal_kl(true_mean, true_log_variance, predicted.mean, predicted.log_variance))
    kl = kl / math.log(2.0)
    decoder_nll = -discretized_gaussian_log_likelihood(x0, predicted.mean, 0.5 * predicted.log_variance)
    decoder_nll = _mean_flat(decoder_nll) / math.log(2.0)
    vb = torch.where(t == 0, decoder_nll, kl) * (diffusion.num_steps / 1000.0)
    return {"mse": mse, "vb": vb, "loss": mse + vb}
