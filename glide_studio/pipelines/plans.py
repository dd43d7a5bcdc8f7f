"""The two GLIDE stages as plans the driver runs: the 64 px base stage and the 4x upsample stage.

Both can inpaint (`known`: the edit box as the model sees it, with its mask of pixels to regenerate);
the base stage can also start part-way from a given image (SDEdit; its chain comes from `chains`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from glide_studio.diffusion import Conditioning, NoiseSource
from glide_studio.models.unet import upscale_low_res
from glide_studio.pipelines.chains import StartOver, from_noise, start_from_image
from glide_studio.pipelines.editbox import BoxedInput
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.levers import StageDenoiser, network_stride, region_to_draw
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Request
from glide_studio.pipelines.stages import (
    NO_CLIP_MESSAGE,
    StagePlan,
    clip_cond_fn,
    image_to_tensor,
    inpaint_kwargs,
    keep_known_pixels,
    mask_to_tensor,
    noise_for,
    paste_fn,
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

    def conditioning(self, model_kwargs: dict, cond_fn=None) -> Conditioning:
        """The stage's hooks: the model's kwargs, the known pixels pasted into every x0, a CLIP gradient."""
        return Conditioning(model_kwargs, paste_fn(self.image, self.regenerate), cond_fn)

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
    schedule = model.config.noise_schedule
    if start_image is None:
        chain = from_noise(schedule, request.sampler, request.steps, eta=request.eta)
    else:
        chain = start_from_image(schedule, request.sampler, request.steps, request.strength,
                                 image_to_tensor(start_image, device), eta=request.eta)
    use_clip = request.guidance.uses_clip
    if use_clip and not models.has_clip:
        raise PipelineError(NO_CLIP_MESSAGE)
    guided = request.guidance.classifier_free and request.guidance_scale != 1.0
    known_pixels = _Known(known, device)
    levers = StageDenoiser(model, models.precision, request, guided=guided)

    shape = (batch, 3, size, size)

    def start(started_from, state, anchor):
        if isinstance(state, StartOver):  # the strength scrubber: from the run's own start noise, at this level
            state, anchor = chain.restart(state, noise_for(request).draw(shape, device=device)), None
        elif state is not None and start_image is not None and started_from is not None:
            state = _renoise_new_strokes(chain, state, started_from, start_image, noise, device)
        rows = 2 * batch if guided else batch
        kwargs = text_kwargs(model, request.prompt, batch, device, guided, models.precision)
        kwargs.update(inpaint_kwargs(model, known_pixels.image, known_pixels.regenerate, rows))
        denoiser = levers.build(device, state, anchor)
        cond_fn = levers.guidance_gradient(
            clip_cond_fn(models, request.prompt, batch, request.guidance_scale) if use_clip else None)
        return chain.sample(denoiser, noise, shape, device, known_pixels.conditioning(kwargs, cond_fn), state)

    return StagePlan("base", chain.num_steps, start, known_pixels.finish, shape, str(chain.sampler), chain.key,
                     start_image, carried=levers.carried, levels=chain.levels)


def _renoise_new_strokes(chain, state, started_from: np.ndarray, start_image: np.ndarray, noise, device):
    """A resumed SDEdit run whose strokes changed: the changed pixels of x_t become the new picture noised to
    the level the run has reached (q_sample at its current step), the rest of x_t goes on as it was."""
    if started_from.shape != start_image.shape:
        return state
    changed = np.any(started_from != start_image, axis=-1)
    if not changed.any():
        return state
    x = state.x.to(device)
    level = torch.full((x.shape[0],), max(state.t, 0), dtype=torch.int64, device=device)
    image = image_to_tensor(start_image, device).expand(x.shape[0], -1, -1, -1)
    fresh = chain.diffusion.q_sample(image, level, noise.draw(tuple(x.shape), device=device))
    where = torch.from_numpy(changed).to(device)[None, None]
    return dataclasses.replace(state, x=torch.where(where, fresh.to(x.dtype), x))


def upsample_stage(models: ModelSet, request: Request, noise: NoiseSource, *, known: BoxedInput | None = None,
                   low_res: np.ndarray | None = None) -> StagePlan:
    """Low-res uint8 images (the previous stage's result, or `low_res` (N,h,w,3)) -> upsample size,
    caption-conditioned, without CFG as in GLIDE's notebooks."""
    model = models.require_upsample()
    size, batch, device = models.upsample_size, request.batch, models.device
    schedule = model.config.noise_schedule
    if request.upsample_strength < 1.0:  # started from the upscaled low-res picture once it is known (start)
        chain = start_from_image(schedule, request.sampler, request.upsample_steps, request.upsample_strength,
                                 None, eta=request.eta)
    else:
        chain = from_noise(schedule, request.sampler, request.upsample_steps, eta=request.eta, upsampler=True)
    known_pixels = _Known(known, device)
    region = region_to_draw(known_pixels.regenerate, request.upsample_context, network_stride(model))
    levers = StageDenoiser(model, models.precision, request, guided=False, region=region,
                           reuse_interval=request.upsample_reuse_interval, reuse_stop=request.upsample_reuse_stop,
                           reuse_start=1.0)
    shape = (batch, 3, size, size)

    def start(previous, state, anchor):
        source = previous if previous is not None else low_res
        if source is None:
            raise PipelineError("the upsample stage has no low-resolution input")
        kwargs = text_kwargs(model, request.prompt, batch, device, guided=False, precision=models.precision)
        kwargs["low_res"] = image_to_tensor(source, device)
        kwargs.update(inpaint_kwargs(model, known_pixels.image, known_pixels.regenerate, batch))
        started = chain
        if request.upsample_strength < 1.0:
            started = dataclasses.replace(chain, start_image=upscale_low_res(kwargs["low_res"], (size, size)))
        return started.sample(levers.build(device, state, anchor), noise, shape, device,
                              known_pixels.conditioning(kwargs), state)

    return StagePlan("upsample", chain.num_steps, start, known_pixels.finish, shape, str(chain.sampler),
                     chain.key, carried=levers.carried, levels=chain.levels)
