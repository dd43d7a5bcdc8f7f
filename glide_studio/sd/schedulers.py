"""The samplers users know, as diffusers builds them from the model's own scheduler settings, and a
scheduler's state between two steps as data (what pause, resume and the timeline keep)."""

from __future__ import annotations

from typing import Any

import torch

from glide_studio.pipelines.request import Scheduler

FIXED_ATTRIBUTES = frozenset({
    "_internal_dict", "betas", "alphas", "alphas_cumprod", "alpha_t", "sigma_t", "lambda_t", "sigmas",
    "timesteps", "init_noise_sigma", "num_inference_steps", "final_alpha_cumprod", "one",
})
"""What `set_timesteps` decides once: the rest of a scheduler's attributes are what stepping changes (the step
index, DPM-Solver's previous model outputs), which a snapshot keeps."""


def make_scheduler(kind: Scheduler, config: dict):
    import diffusers

    if kind == Scheduler.DPMPP_2M_KARRAS:
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)
    if kind == Scheduler.EULER_A:
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    if kind == Scheduler.DDIM:
        return diffusers.DDIMScheduler.from_config(config)
    raise ValueError(f"no scheduler for {kind!r}")


def map_tensors(value: Any, fn) -> Any:
    if torch.is_tensor(value):
        return fn(value)
    if isinstance(value, list):
        return [map_tensors(item, fn) for item in value]
    if isinstance(value, tuple):
        return tuple(map_tensors(item, fn) for item in value)
    if isinstance(value, dict):
        return {key: map_tensors(item, fn) for key, item in value.items()}
    return value


def snapshot(scheduler) -> dict:
    """The scheduler's changing attributes, copied (tensors cloned)."""
    return {key: map_tensors(value, torch.clone) for key, value in vars(scheduler).items()
            if key not in FIXED_ATTRIBUTES}


def restore(scheduler, kept: dict, device) -> None:
    """Put a snapshot back into a scheduler whose timesteps are already set for the same chain."""
    for key, value in kept.items():
        setattr(scheduler, key, map_tensors(value, lambda tensor: tensor.to(device, copy=True)))


def timestep_alpha_bar(scheduler, timestep) -> float:
    """ᾱ at a (possibly fractional) timestep, for the preview's x0 estimate."""
    table = scheduler.alphas_cumprod
    index = min(max(int(round(float(timestep))), 0), len(table) - 1)
    return float(table[index])
