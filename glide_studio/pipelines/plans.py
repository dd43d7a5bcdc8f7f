"""The two GLIDE stages as plans the driver runs: the 64 px base stage and the 4x upsample stage.

Both can inpaint (`known`: the edit box as the model sees it, with its mask of pixels to regenerate);
the base stage can also start part-way from a given image (SDEdit).
"""

from __future__ import annotations

import numpy as np
import torch

from glide_studio.diffusion import NoiseSource, paired_classifier_free_guidance
from glide_studio.pipelines.editbox import BoxedInput
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Guidance, Request
from glide_studio.pipelines.stages import (
    NO_CLIP_MESSAGE,
    UPSAMPLE_TEMPERATURE,
    StagePlan,
    clip_cond_fn,
    image_to_tensor,
    inpaint_kwargs,
    keep_known_pixels,
    mask_to_tensor,
    model_denoiser,
    paste_fn,
    sample_stage,
    stage_diffusion,
    tensor_to_uint8,
    text_kwargs,
)


class _Known:
    """Known pixels of one stage, as tensors for the model and as uint8 for the exact copy at the end."""

    def __init__(self, boxed: BoxedInput | None, device):
        self.boxed = boxed
        if boxed is None or boxed.mask is None:
            self.image = self.regenerate = None
            return
        self.image = image_to_tensor(boxed.image, device)
        self.regenerate = mask_to_tensor(boxed.mask, device)

    def finish(self, sample: torch.Tensor) -> np.ndarray:
        result = tensor_to_uint8(sample)
        if self.image is None:
            return result
        return keep_known_pixels(result, self.boxed.image, self.boxed.mask)


def wants_upsample(models: ModelSet, request: Request) -> bool:
    if request.upsample_model is None:
        return False
    if models.upsample is None:
        raise PipelineError(
            f"the request asks for the upsampler {request.upsample_model!r} but none is loaded "
            "(set upsample_model to None to stop at the base resolution)"
        )
    return True


def base_stage(models: ModelSet, request: Request, noise: NoiseSource, *, known: BoxedInput | None = None,
               start_image: np.ndarray | None = None) -> StagePlan:
    """Text -> base-size image, optionally inpainting `known` and/or starting from `start_image`
    (uint8, base size) noised to `request.strength`."""
    model = models.require_base()
    size, batch, device = models.base_size, request.batch, models.device
    strength = 1.0 if start_image is None else request.strength
    diffusion = stage_diffusion(model, request.sampler, request.steps, upsampler=False, strength=strength)
    t_start = None if start_image is None else diffusion.num_steps - 1
    num_steps = diffusion.num_steps
    use_clip = request.guidance == Guidance.CLIP
    if use_clip and not models.has_clip:
        raise PipelineError(NO_CLIP_MESSAGE)
    guided = not use_clip and request.guidance_scale != 1.0
    known_pixels = _Known(known, device)

    def start(_previous):
        rows = 2 * batch if guided else batch
        kwargs = text_kwargs(model, request.prompt, batch, device, guided, models.precision)
        kwargs.update(inpaint_kwargs(model, known_pixels.image, known_pixels.regenerate, rows))
        denoiser = model_denoiser(model, models.precision)
        if guided:
            denoiser = paired_classifier_free_guidance(denoiser, request.guidance_scale)
        cond_fn = clip_cond_fn(models, request.prompt, batch, request.guidance_scale) if use_clip else None
        x_T = None
        if start_image is not None:
            x_start = image_to_tensor(start_image, device).expand(batch, -1, -1, -1)
            t = torch.full((batch,), t_start, dtype=torch.int64, device=device)
            x_T = diffusion.q_sample(x_start, t, noise.draw(x_start.shape, device=device))
        return sample_stage(request, denoiser, diffusion, noise, x_T=x_T, shape=(batch, 3, size, size),
                            t_start=t_start, device=device,
                            denoised_fn=paste_fn(known_pixels.image, known_pixels.regenerate),
                            cond_fn=cond_fn, model_kwargs=kwargs)

    return StagePlan("base", num_steps, start, known_pixels.finish)


def upsample_stage(models: ModelSet, request: Request, noise: NoiseSource, *, known: BoxedInput | None = None,
                   low_res: np.ndarray | None = None) -> StagePlan:
    """Low-res uint8 images (the previous stage's result, or `low_res` (N,h,w,3)) -> upsample size,
    caption-conditioned, without CFG as in GLIDE's notebooks."""
    model = models.require_upsample()
    size, batch, device = models.upsample_size, request.batch, models.device
    diffusion = stage_diffusion(model, request.sampler, request.upsample_steps, upsampler=True)
    known_pixels = _Known(known, device)

    def start(previous):
        source = previous if previous is not None else low_res
        if source is None:
            raise PipelineError("the upsample stage has no low-resolution input")
        kwargs = text_kwargs(model, request.prompt, batch, device, guided=False, precision=models.precision)
        kwargs["low_res"] = image_to_tensor(source, device)
        kwargs.update(inpaint_kwargs(model, known_pixels.image, known_pixels.regenerate, batch))
        x_T = noise.draw((batch, 3, size, size), device=device) * UPSAMPLE_TEMPERATURE
        return sample_stage(request, model_denoiser(model, models.precision), diffusion, noise, x_T=x_T, device=device,
                            denoised_fn=paste_fn(known_pixels.image, known_pixels.regenerate),
                            model_kwargs=kwargs)

    return StagePlan("upsample", diffusion.num_steps, start, known_pixels.finish)
