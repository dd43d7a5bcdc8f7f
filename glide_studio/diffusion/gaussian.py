"""A (respaced) Gaussian diffusion: float64 tables and the per-step maths of GLIDE's learned-range model.

Every coefficient is taken from a float64 table and rounded to float32 at the point of use, then the
per-step arithmetic runs in float32, exactly as the reference does; computing the tables in float32
changes trajectories measurably.

A denoiser is any callable ``denoiser(x, model_timesteps, **model_kwargs) -> (B, 6, H, W)`` returning
eps (channels 0-2) and the variance interpolation values v in [-1, 1] (channels 3-5). It receives the
*original* integer timesteps (``timestep_map[t]``), never the respaced index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from glide_studio.diffusion.errors import DiffusionError
from glide_studio.diffusion.schedules import betas_for_schedule, respaced_betas, space_timesteps

Denoiser = Callable[..., torch.Tensor]
DenoisedFn = Callable[[torch.Tensor], torch.Tensor]

TABLE_FIELDS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "alphas_cumprod_next",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "log_betas",
)


@dataclass
class MeanVariance:
    """What one reverse step predicts at respaced index t."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_xstart: torch.Tensor
    eps: torch.Tensor


class Diffusion:
    """A Gaussian diffusion over the kept timesteps of a base schedule (all 1000 when not respaced)."""

    def __init__(self, schedule: str = "squaredcos_cap_v2", respacing: str | int | None = None,
                 num_base_steps: int = 1000, *, timesteps: list[int] | None = None):
        """respacing: a `space_timesteps` spec; or give the kept original `timesteps` explicitly."""
        base_betas = betas_for_schedule(schedule, num_base_steps)
        base_alphas_cumprod = np.cumprod(1.0 - base_betas)
        if timesteps is not None:
            kept = sorted({int(t) for t in timesteps})
            if not kept or kept[0] < 0 or kept[-1] >= num_base_steps:
                raise DiffusionError(f"timesteps must be a non-empty subset of 0..{num_base_steps - 1}")
            respacing = f"{len(kept)} explicit"
        elif respacing is None or respacing == "":
            kept = list(range(num_base_steps))
        else:
            kept = space_timesteps(num_base_steps, respacing)
        self.schedule = schedule
        self.respacing = respacing
        self.num_base_steps = num_base_steps
        self.timestep_map = torch.tensor(kept, dtype=torch.int64)
        self._set_tables(respaced_betas(base_alphas_cumprod, kept))

    def _set_tables(self, betas: np.ndarray) -> None:
        self.betas = betas
        self.num_steps = len(betas)
        alphas = 1.0 - betas
        acp = np.cumprod(alphas, axis=0)
        self.alphas_cumprod = acp
        self.alphas_cumprod_prev = np.append(1.0, acp[:-1])
        self.alphas_cumprod_next = np.append(acp[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(acp)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - acp)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - acp)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / acp)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / acp - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - acp)
        # The posterior variance is 0 at t=0; the log uses t=1's value there so it stays finite. A one-step
        # chain has no t=1: its only step adds no noise, so any finite value serves; beta's is used.
        first = self.posterior_variance[1] if len(betas) > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - acp)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - acp)
        self.log_betas = np.log(betas)

    def __repr__(self) -> str:
        return f"Diffusion({self.schedule!r}, respacing={self.respacing!r}, steps={self.num_steps})"

    # -- helpers -------------------------------------------------------------------------------------

    def coef(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Table `name` at indices t (B,), rounded to float32 and shaped to broadcast against `like`."""
        table = getattr(self, name)
        values = torch.from_numpy(table).to(t.device)[t].float().to(like.device)
        return values.reshape(-1, *([1] * (like.dim() - 1)))

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """The original-scale integer timesteps the network sees for respaced indices t."""
        return self.timestep_map.to(t.device)[t]

    def check_index(self, t: int) -> int:
        if not 0 <= t < self.num_steps:
            raise DiffusionError(f"respaced index {t} out of range 0..{self.num_steps - 1}")
        return t

    # -- forward process -----------------------------------------------------------------------------

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise clean data to respaced index t: sqrt(abar) x0 + sqrt(1 - abar) noise."""
        return (self.coef("sqrt_alphas_cumprod", t, x_start) * x_start
                + self.coef("sqrt_one_minus_alphas_cumprod", t, x_start) * noise)

    def q_posterior_mean_variance(self, x_start, x_t, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = (self.coef("posterior_mean_coef1", t, x_t) * x_start
                + self.coef("posterior_mean_coef2", t, x_t) * x_t)
        variance = self.coef("posterior_variance", t, x_t)
        log_variance = self.coef("posterior_log_variance_clipped", t, x_t)
        return mean, variance, log_variance

    def predict_xstart_from_eps(self, x_t, t, eps):
        return (self.coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                - self.coef("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)

    def predict_eps_from_xstart(self, x_t, t, pred_xstart):
        return ((self.coef("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart)
                / self.coef("sqrt_recipm1_alphas_cumprod", t, x_t))

    # -- reverse process -----------------------------------------------------------------------------

    def output_to_mean_variance(self, model_output, x_t, t, *, clip_denoised=True,
                                denoised_fn: DenoisedFn | None = None) -> MeanVariance:
        """Turn a (B, 6, H, W) network output into the reverse-step distribution (learned range)."""
        channels = x_t.shape[1]
        if model_output.shape[1] != 2 * channels:
            raise DiffusionError(
                f"the denoiser returned {model_output.shape[1]} channels; expected {2 * channels} "
                "(eps and variance values)"
            )
        eps, var_values = model_output[:, :channels], model_output[:, channels:]
        min_log = self.coef("posterior_log_variance_clipped", t, x_t)
        max_log = self.coef("log_betas", t, x_t)
        frac = (var_values + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        variance = torch.exp(log_variance)
        pred_xstart = self.predict_xstart_from_eps(x_t, t, eps)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return MeanVariance(mean, variance, log_variance, pred_xstart, eps)

    def p_mean_variance(self, denoiser: Denoiser, x_t, t, *, clip_denoised=True,
                        denoised_fn: DenoisedFn | None = None, model_kwargs: dict | None = None):
        output = denoiser(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        return self.output_to_mean_variance(output, x_t, t, clip_denoised=clip_denoised,
                                            denoised_fn=denoised_fn)

    def condition_mean(self, cond_fn, out: MeanVariance, x_t, t, model_kwargs=None) -> torch.Tensor:
        """Shift the mean along the guidance gradient, scaled by the learned variance."""
        grad = cond_fn(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        return out.mean.float() + out.variance * grad.float()

    def condition_score(self, cond_fn, out: MeanVariance, x_t, t, model_kwargs=None) -> MeanVariance:
        """Shift eps by the guidance score; x0 is recomputed from it and deliberately not clamped again."""
        alpha_bar = self.coef("alphas_cumprod", t, x_t)
        eps = self.predict_eps_from_xstart(x_t, t, out.pred_xstart)
        eps = eps - (1 - alpha_bar).sqrt() * cond_fn(x_t, self.model_timesteps(t), **(model_kwargs or {}))
        pred_xstart = self.predict_xstart_from_eps(x_t, t, eps)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return MeanVariance(mean, out.variance, out.log_variance, pred_xstart, eps)
