"""Guidance as wrappers around the denoiser, never flags inside samplers.

- `classifier_free_guidance`: the reference's 2B-row form (rows [0, B) conditional, [B, 2B) unconditional).
- `paired_classifier_free_guidance`: the same maths over B rows (x is doubled inside), for pipelines.
- `guidance_in_window`: paired CFG only inside a window of noise levels, the conditional half alone outside;
  `cond_fn_in_window` the same window for CLIP guidance's gradient.
- `paste_known_pixels`: a denoised_fn that keeps known pixels of x0 (mask = 1 means KNOWN, as in GLIDE).
- `clip_guidance`: a cond_fn from the noised CLIP encoders.
"""

from __future__ import annotations

import math

import torch

from glide_studio.diffusion.gaussian import DenoisedFn, Denoiser

EPS_CHANNELS = 3


def _guide_eps(output: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    eps, rest = output[:, :EPS_CHANNELS], output[:, EPS_CHANNELS:]
    cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
    guided = uncond_eps + scale * (cond_eps - uncond_eps)
    return guided, rest, eps


def classifier_free_guidance(denoiser: Denoiser, scale: float) -> Denoiser:
    """GLIDE's CFG model_fn: reads only the first half of x, runs [half, half] with the 2B-row kwargs,
    and writes eps_u + s (eps_c - eps_u) into both halves; each half keeps its own variance channels."""

    def guided(x: torch.Tensor, timesteps: torch.Tensor, **model_kwargs) -> torch.Tensor:
        half = x[: len(x) // 2]
        output = denoiser(torch.cat([half, half], dim=0), timesteps, **model_kwargs)
        guided_eps, rest, _ = _guide_eps(output, scale)
        return torch.cat([torch.cat([guided_eps, guided_eps], dim=0), rest], dim=1)

    return guided


def paired_classifier_free_guidance(denoiser: Denoiser, scale: float) -> Denoiser:
    """CFG over B rows: x (B) is run as [x, x] with 2B-row kwargs (conditional first); returns (B, 6)
    with the guided eps and the conditional variance, i.e. row for row what the reference's first half
    gets, without carrying an unconditional half through the sampler."""

    def guided(x: torch.Tensor, timesteps: torch.Tensor, **model_kwargs) -> torch.Tensor:
        output = denoiser(torch.cat([x, x], dim=0), torch.cat([timesteps, timesteps], dim=0), **model_kwargs)
        guided_eps, rest, _ = _guide_eps(output, scale)
        return torch.cat([guided_eps, rest[: len(x)]], dim=1)

    return guided


def conditional_rows(kwargs: dict, rows: int) -> dict:
    """The first `rows` rows (the conditional half) of every per-row tensor in the model's kwargs, nested dicts
    (the text embedding) included."""
    def first(value):
        if isinstance(value, dict):
            return {key: first(item) for key, item in value.items()}
        return value[:rows] if torch.is_tensor(value) and value.dim() and len(value) == 2 * rows else value

    return {key: first(value) for key, value in kwargs.items()}


def guidance_in_window(denoiser: Denoiser, scale: float, window: tuple[float, float],
                       num_timesteps: int = 1000) -> Denoiser:
    """Paired CFG at noise levels t / num_timesteps inside `window` = (low, high), both ends included; outside
    it the conditional half runs alone (B rows instead of 2B), which is what CFG at scale 1 would return.

    Guidance matters where the picture's layout and colours are decided; near the data (low noise) the
    conditional prediction alone barely differs, and it costs half. The whole window (0, 1) is plain paired
    CFG, the same function as `paired_classifier_free_guidance`.
    """
    low, high = window
    guided = paired_classifier_free_guidance(denoiser, scale)
    if low <= 0.0 and high >= 1.0:
        return guided
    first, last = low * num_timesteps, high * num_timesteps

    def windowed(x: torch.Tensor, timesteps: torch.Tensor, **model_kwargs) -> torch.Tensor:
        if first <= float(timesteps[0]) <= last:
            return guided(x, timesteps, **model_kwargs)
        return denoiser(x, timesteps, **conditional_rows(model_kwargs, len(x)))

    return windowed


def cond_fn_in_window(cond_fn, window: tuple[float, float], num_timesteps: int = 1000):
    """CLIP guidance's gradient only at noise levels inside `window` (as `guidance_in_window`), zero outside it,
    where the CLIP encoder then does not run at all. The whole window (0, 1) is `cond_fn` itself."""
    low, high = window
    if low <= 0.0 and high >= 1.0:
        return cond_fn
    first, last = low * num_timesteps, high * num_timesteps

    def windowed(x: torch.Tensor, timesteps: torch.Tensor, **model_kwargs) -> torch.Tensor:
        if first <= float(timesteps[0]) <= last:
            return cond_fn(x, timesteps, **model_kwargs)
        return torch.zeros_like(x)

    return windowed


def paste_known_pixels(known_image: torch.Tensor, known_mask: torch.Tensor) -> DenoisedFn:
    """x0 -> x0 (1 - mask) + image mask. known_mask is 1 where the pixel is KNOWN (GLIDE's inpaint_mask),
    and known_image should already be multiplied by it (the reference passes `inpaint_image` as is)."""

    def denoised_fn(x_start: torch.Tensor) -> torch.Tensor:
        return x_start * (1 - known_mask) + known_image * known_mask

    return denoised_fn


def normalise_embedding(z: torch.Tensor) -> torch.Tensor:
    """Divide by (L2 norm + 1e-12), as the noised CLIP does."""
    return z / (torch.linalg.norm(z, dim=-1, keepdim=True) + 1e-12)


def clip_text_embedding(text_encoder, tokens: torch.Tensor, text_len: torch.Tensor) -> torch.Tensor:
    """The normalised CLIP text embedding, computed once per run without gradients."""
    with torch.no_grad():
        return normalise_embedding(text_encoder(tokens, text_len))


DEFAULT_LOGIT_SCALE = math.log(100.0)


def clip_guidance(image_encoder, text_embedding: torch.Tensor, grad_scale: float,
                  logit_scale: float | torch.Tensor = DEFAULT_LOGIT_SCALE):
    """A cond_fn(x, model_timesteps, **_) returning grad_scale * d/dx [exp(logit_scale) sum(z_t . z_i)],
    where z_i is the normalised noised-CLIP embedding of x (diffusion scale [-1, 1] mapped to 0..255).

    text_embedding: normalised, one row per sample (see `clip_text_embedding`).
    """
    if not torch.is_tensor(logit_scale):
        logit_scale = torch.tensor([logit_scale], dtype=torch.float32)
    scale = torch.exp(logit_scale.to(torch.float32))

    def cond_fn(x: torch.Tensor, timesteps: torch.Tensor, **_model_kwargs) -> torch.Tensor:
        with torch.enable_grad():
            x_var = x.detach().requires_grad_(True)
            image_embedding = normalise_embedding(image_encoder((x_var + 1) * 127.5, timesteps))
            loss = scale.to(x.device) * (text_embedding.to(x.device) * image_embedding).sum()
            grad = torch.autograd.grad(loss.sum(), x_var)[0].detach()
        return grad * grad_scale

    return cond_fn
