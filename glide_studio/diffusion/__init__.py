"""Diffusion maths, samplers and guidance wrappers. Sees the model only as a callable."""

from glide_studio.diffusion.conditioning import UNCONDITIONED, CondFn, Conditioning
from glide_studio.diffusion.errors import DiffusionError
from glide_studio.diffusion.gaussian import Diffusion, MeanVariance
from glide_studio.diffusion.guidance import (
    classifier_free_guidance,
    clip_guidance,
    clip_text_embedding,
    paired_classifier_free_guidance,
    paste_known_pixels,
)
from glide_studio.diffusion.losses import training_losses
from glide_studio.diffusion.noise import NoiseSource, NoiseState
from glide_studio.diffusion.samplers import (
    SAMPLERS,
    Sampler,
    SamplerStep,
    ancestral_sample,
    ddim_reverse_step,
    ddim_sample,
    dpmpp_2m_sample,
    dpmpp_2m_sde_sample,
    get_sampler,
)
from glide_studio.diffusion.schedules import betas_for_schedule, space_timesteps
from glide_studio.diffusion.state import SamplerState, chain_key

__all__ = [
    "SAMPLERS",
    "UNCONDITIONED",
    "CondFn",
    "Conditioning",
    "Sampler",
    "Diffusion",
    "DiffusionError",
    "MeanVariance",
    "NoiseSource",
    "NoiseState",
    "SamplerState",
    "SamplerStep",
    "ancestral_sample",
    "betas_for_schedule",
    "classifier_free_guidance",
    "clip_guidance",
    "chain_key",
    "clip_text_embedding",
    "ddim_reverse_step",
    "ddim_sample",
    "dpmpp_2m_sample",
    "dpmpp_2m_sde_sample",
    "get_sampler",
    "paired_classifier_free_guidance",
    "paste_known_pixels",
    "space_timesteps",
    "training_losses",
]
