"""Stable Diffusion inpaint, sketch to image and generate, as one Step stream per run.

The edit box is what the model sees (squared and resized to the model's size, as for GLIDE); the picture is
encoded to latents by the VAE, sampled under classifier-free guidance with a negative prompt by the chosen
diffusers scheduler, decoded by the VAE and pasted back in pixel space through the user's exact mask, so every
pixel outside the mask stays bit for bit. Each step's preview is the latent projected to RGB; the full decode
happens once, at the end. All randomness comes from one CPU generator per candidate (seed + i, as A1111 does),
so the same request gives the same pixels and any candidate can be run alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from glide_studio.pipelines import editbox
from glide_studio.pipelines.request import MAX_SEED, Family, Mode, Request, Scheduler, Step
from glide_studio.pipelines.stages import image_to_tensor, tensor_to_uint8
from glide_studio.sd import gligen, ip_adapter, sdxl, taesd, unclip
from glide_studio.sd.components import SDModelSet
from glide_studio.sd.errors import SDError
from glide_studio.sd.preview import project
from glide_studio.sd.schedulers import make_scheduler, restore, snapshot, timestep_alpha_bar
from glide_studio.sd.state import SDRunState

STAGE = "base"
MODES = (Mode.GENERATE, Mode.INPAINT, Mode.SDEDIT)


def composite_sketch(image: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """The strokes (RGBA, straight alpha) laid over the image, uint8."""
    alpha = sketch[..., 3:4].astype(np.float32) / 255.0
    blended = image.astype(np.float32) * (1 - alpha) + sketch[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Inputs:
    """What the model sees of the request: the boxed picture (None: generate from nothing), the region to
    regenerate at model size (None: all of it), where sampling starts (None: noise) and the mask for the paste."""

    boxed: editbox.BoxedInput | None
    regenerate: np.ndarray | None
    start_image: np.ndarray | None
    paste_mask: np.ndarray | None


def _inputs(models: SDModelSet, request: Request) -> _Inputs:
    size = models.model_size
    if request.mode == Mode.INPAINT:
        if request.image is None or request.mask is None:
            raise SDError("inpainting needs a picture and a mask of the region to regenerate")
        boxed = editbox.prepare(request.image, request.mask, None, request.edit_box, size, require_mask=True)
        return _Inputs(boxed, boxed.mask, None, request.mask)
    if request.mode == Mode.SDEDIT:
        if request.image is None or request.sketch is None:
            raise SDError("sketch to image needs a picture and a sketch layer")
        sketch = np.asarray(request.sketch)
        if sketch.ndim != 3 or sketch.shape[2] != 4:
            raise SDError(f"the sketch must be an HxWx4 RGBA layer, got shape {sketch.shape}")
        mask = request.mask if request.mask is not None else sketch[..., 3] > 0
        boxed = editbox.prepare(request.image, mask, sketch, request.edit_box, size, require_mask=True)
        return _Inputs(boxed, boxed.mask, composite_sketch(boxed.image, boxed.sketch), mask)
    if request.image is None:
        return _Inputs(None, None, None, None)
    return _Inputs(editbox.prepare(request.image, None, None, request.edit_box, size), None, None, None)


def check(models: SDModelSet, request: Request) -> None:
    request.check()
    if request.family is not Family.SD:
        raise SDError(f"the model {request.base_model!r} is not a Stable Diffusion model")
    if request.mode not in MODES:
        raise SDError(f"Stable Diffusion models run {', '.join(mode.value for mode in MODES)}, not {request.mode}")
    if request.guidance.uses_clip:
        raise SDError("CLIP guidance uses GLIDE's noised CLIP; Stable Diffusion runs use classifier-free guidance")


def chain_key(request: Request, shape: tuple[int, ...]) -> str:
    """Which chain a state belongs to: its scheduler, steps, strength (sketch to image) and latent shape."""
    strength = request.strength if request.mode == Mode.SDEDIT else 1.0
    spec = f"{request.scheduler}/{request.steps}/{strength!r}/{request.eta!r}/{shape}"
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


def run(models: SDModelSet, request: Request, *, resume: SDRunState | None = None) -> Iterator[Step]:
    """Checks now (a bad request or a state of another run raises here), samples as the stream is drawn."""
    check(models, request)
    inputs = _inputs(models, request)
    gligen.check_regions(models, request, inputs.boxed)
    latent_side = models.model_size // models.vae_scale
    shape = (request.batch, models.latent_channels, latent_side, latent_side)
    chain = chain_key(request, shape)
    if resume is not None:
        if not isinstance(resume, SDRunState):
            raise SDError("the state is from a GLIDE run; it cannot continue a Stable Diffusion run")
        if resume.mode != str(request.mode):
            raise SDError(f"the state is from a run in mode {resume.mode}; this request's mode is {request.mode}")
        if resume.chain != chain:
            raise SDError("the state belongs to another chain (its scheduler, steps, strength, size or batch differ "
                          "from this request's)")
    return _steps(models, request, inputs, shape, chain, resume)


def _timesteps(scheduler, request: Request, device) -> torch.Tensor:
    """The whole schedule in `steps` steps, or (sketch to image) the last `steps` of a schedule of
    ceil(steps / strength): A1111's denoising strength (the share of the sampler's own schedule that is run, with
    "do exactly the amount of steps" on). With Karras sigmas that starts lower in diffusion time than GLIDE's
    strength, which is a noise level (0.5 starts near t = 380 of 1000, DDIM and Euler near 450)."""
    if request.mode != Mode.SDEDIT or request.strength >= 1.0:
        scheduler.set_timesteps(request.steps, device=device)
        return scheduler.timesteps
    total = max(request.steps, math.ceil(request.steps / request.strength))
    scheduler.set_timesteps(total, device=device)
    begin = (total - request.steps) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


def _generators(request: Request) -> list[torch.Generator]:
    """One CPU generator per candidate, seeded seed + i (wrapping), as A1111 seeds a batch."""
    return [torch.Generator(device="cpu").manual_seed((request.seed + candidate) % (MAX_SEED + 1))
            for candidate in range(request.batch)]


def _noise(generators: list[torch.Generator], shape: tuple[int, ...], device) -> torch.Tensor:
    draws = [torch.randn((1, *shape[1:]), generator=generator, dtype=torch.float32) for generator in generators]
    return torch.cat(draws).to(device)


@torch.no_grad()
def _encode_prompts(models: SDModelSet, request: Request, guided: bool) -> tuple[torch.Tensor, dict | None]:
    """(2B or B, L, D): the negative prompt's rows, then the prompt's (the text encoder runs once per run); and
    the UNet's added conditioning from the text (SDXL's pooled projection and size ids), None for SD 1.x / 2.x."""
    if models.sdxl is not None:
        return sdxl.conditioning(models, request.prompt, request.negative_prompt, request.batch, guided)
    tokenizer = models.tokenizer
    prompts = ([request.negative_prompt] * request.batch if guided else []) + [request.prompt] * request.batch
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    ids = tokens.input_ids.to(models.device)
    return models.text_encoder(ids)[0].to(models.unet_dtype), None


@torch.no_grad()
def _encode_image(models: SDModelSet, image: np.ndarray) -> torch.Tensor:
    """An (S, S, 3) uint8 picture or a (1, 3, S, S) tensor in [-1, 1] -> (1, C, h, w) scaled latents (the
    posterior's mean: deterministic)."""
    pixels = image if torch.is_tensor(image) else image_to_tensor(image, models.device)
    posterior = models.vae.encode(pixels.to(models.device, models.vae.dtype)).latent_dist
    return posterior.mean.float() * models.scaling_factor


@torch.no_grad()
def _decode(models: SDModelSet, latents: torch.Tensor) -> np.ndarray:
    pixels = models.vae.decode((latents / models.scaling_factor).to(models.vae.dtype)).sample
    return tensor_to_uint8(pixels.float().clamp(-1, 1))


def _latent_mask(regenerate: np.ndarray, latent_side: int, device) -> torch.Tensor:
    """(1, 1, h, w) of 1 = regenerate: a latent pixel is regenerated when any of its pixels is (the exact mask
    decides the paste afterwards)."""
    mask = torch.from_numpy(np.asarray(regenerate) != 0).float()[None, None]
    return F.adaptive_max_pool2d(mask, latent_side).to(device)


def _x0(scheduler, model_output: torch.Tensor, model_input: torch.Tensor, timestep) -> torch.Tensor:
    """The clean-latent estimate behind this step, for the preview (the sampler keeps its own)."""
    alpha_bar = timestep_alpha_bar(scheduler, timestep)
    if scheduler.config.prediction_type == "v_prediction":
        return math.sqrt(alpha_bar) * model_input - math.sqrt(1 - alpha_bar) * model_output
    return (model_input - math.sqrt(1 - alpha_bar) * model_output) / math.sqrt(alpha_bar)


def _steps(models: SDModelSet, request: Request, inputs: _Inputs, shape, chain: str,
           resume: SDRunState | None) -> Iterator[Step]:
    device = models.device
    guided = request.guidance_scale != 1.0
    scheduler = make_scheduler(request.scheduler, models.scheduler_config)
    timesteps = _timesteps(scheduler, request, device)
    total = len(timesteps)
    generators = _generators(request)
    # Each candidate's first draw: where a fresh run starts, and the noise a plain UNet's known latents are noised
    # with at every step; a resumed run draws it again, then puts its generators where the paused run left them.
    noise = _noise(generators, shape, device)
    # unCLIP's embedding noise is each candidate's second draw, before a resumed run restores its generators.
    class_labels = unclip.class_labels(models, inputs.boxed and inputs.boxed.image, generators, guided)
    image_prompt = ip_adapter.added_conditioning(models, request, guided)
    if resume is not None:
        for generator, kept in zip(generators, resume.generators, strict=True):
            generator.set_state(kept)
    embeddings, text_added = _encode_prompts(models, request, guided)
    added = {**(text_added or {}), **(image_prompt or {})} or None
    grounding = gligen.grounding(models, request, inputs.boxed, guided, total)
    latent_side = shape[-1]

    regenerate = None
    if inputs.regenerate is not None:
        regenerate = _latent_mask(inputs.regenerate, latent_side, device).expand(shape[0], -1, -1, -1)
    conditioning = None
    known_latents = None
    if models.inpainting and gligen.is_gligen(models.unet):  # its own channels, and it keeps the known latents
        blank = inputs.boxed is None or regenerate is None
        known = _encode_image(models, torch.zeros((1, 3, models.model_size, models.model_size), device=device)
                              if blank else inputs.boxed.image)
        conditioning = gligen.inpaint_conditioning(known, None if blank else regenerate, shape[0])
        if not blank:
            known_latents = known.expand(shape[0], -1, -1, -1)
    elif models.inpainting:
        if inputs.boxed is None or regenerate is None:  # generating: nothing is known
            blank = torch.zeros((1, 3, models.model_size, models.model_size), device=device)
            masked = _encode_image(models, blank)
            mask = torch.ones((shape[0], 1, latent_side, latent_side), device=device)
        else:
            pixel_mask = torch.from_numpy(inputs.regenerate != 0).float()[None, None].to(device)
            masked = _encode_image(models, image_to_tensor(inputs.boxed.image, device) * (1 - pixel_mask))
            mask = regenerate
        conditioning = torch.cat([mask, masked.expand(shape[0], -1, -1, -1)], dim=1)
    elif regenerate is not None:  # a plain UNet inpaints by keeping the known latents, noised to each step
        known_latents = _encode_image(models, inputs.boxed.image).expand(shape[0], -1, -1, -1)

    if resume is None:
        if inputs.start_image is not None:
            start = _encode_image(models, inputs.start_image).expand(shape[0], -1, -1, -1)
            latents = scheduler.add_noise(start, noise, timesteps[:1])
        else:
            latents = noise * scheduler.init_noise_sigma
        first = 0
    else:
        restore(scheduler, resume.scheduler, device)
        latents = resume.latents.to(device)
        first = resume.index + 1
        if first < total and inputs.start_image is not None and resume.start_image is not None:
            latents = _renoise_new_strokes(models, scheduler, latents, resume.start_image, inputs.start_image, noise,
                                           timesteps[first:first + 1])

    extra = {"eta": request.eta} if request.scheduler == Scheduler.DDIM else {}
    for index in range(first, total):
        timestep = timesteps[index]
        with torch.no_grad():
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            unet_input = model_input if conditioning is None else torch.cat(
                [model_input, torch.cat([conditioning] * (2 if guided else 1))], dim=1)
            ip_adapter.set_scale(models, request)
            output = models.unet(unet_input.to(models.unet_dtype), timestep, encoder_hidden_states=embeddings,
                                 class_labels=class_labels, added_cond_kwargs=added,
                                 cross_attention_kwargs=grounding and grounding.attention_kwargs(index),
                                 return_dict=False)[0].float()
            if guided:
                unconditional, conditional = output.chunk(2)
                output = unconditional + request.guidance_scale * (conditional - unconditional)
            x0 = _x0(scheduler, output, model_input[: shape[0]], timestep)
            latents = scheduler.step(output, timestep, latents, generator=generators, return_dict=False,
                                     **extra)[0]
            if known_latents is not None:
                latents = _keep_known(scheduler, latents, known_latents, regenerate, noise, timesteps, index)
        state = SDRunState(str(request.mode), chain, index, latents, snapshot(scheduler),
                           tuple(generator.get_state() for generator in generators), inputs.start_image)
        final = None
        if index == total - 1:
            final = _finish(request, inputs, _decode(models, latents))
        preview_input = scheduler.scale_model_input(latents.clone(), timesteps[min(index + 1, total - 1)]) \
            if index < total - 1 else latents
        yield Step(index, total, STAGE, _preview(models, preview_input), _preview(models, x0), final,
                   stage_index=index, stage_total=total, state=state)


def _preview(models: SDModelSet, latents: torch.Tensor) -> torch.Tensor:
    """RGB in [-1, 1] of a step's latents: TAESD's decode at full resolution when the user has it, else the linear
    projection at the latent's."""
    if models.preview_decoder is not None:
        return taesd.decode(models.preview_decoder, latents)
    return project(latents, models.preview_weight, models.preview_bias)


def _renoise_new_strokes(models: SDModelSet, scheduler, latents, started_from: np.ndarray, start_image: np.ndarray,
                         noise, level) -> torch.Tensor:
    """A resumed sketch-to-image run whose strokes changed while it was paused: where the picture with its strokes
    changed, the latent becomes the new picture's latent noised to the level the run has reached, so the new
    strokes take effect; elsewhere it goes on as it was (an unchanged resume stays bit for bit)."""
    if started_from.shape != start_image.shape:
        return latents
    changed = np.any(started_from != start_image, axis=-1)
    if not changed.any():
        return latents
    where = _latent_mask(changed, latents.shape[-1], latents.device) > 0
    fresh = scheduler.add_noise(_encode_image(models, start_image).expand_as(latents), noise, level)
    return torch.where(where, fresh.to(latents.dtype), latents)


def _keep_known(scheduler, latents, known, regenerate, noise, timesteps, index):
    if index + 1 < len(timesteps):
        known = scheduler.add_noise(known, noise, timesteps[index + 1: index + 2])
    return regenerate * latents + (1 - regenerate) * known


def _finish(request: Request, inputs: _Inputs, results: np.ndarray) -> np.ndarray:
    """The decoded results at the picture's size: pasted back through the exact mask (or filling the box)."""
    if inputs.boxed is None:
        return results
    if inputs.regenerate is not None:
        results = np.where(inputs.boxed.mask[None, :, :, None], results, inputs.boxed.image[None])
    return np.stack([editbox.paste_back(request.image, result, inputs.boxed, inputs.paste_mask)
                     for result in results])
