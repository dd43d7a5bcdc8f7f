"""The one way a request's networks are loaded: the GUI engine, the command line and the benchmarks all
call `load_model_set`."""

from __future__ import annotations

from collections.abc import MutableMapping

from glide_studio import checkpoints
from glide_studio.models import choose_precision
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Family, Mode, Request
from glide_studio.runs.errors import ModelUnavailableError


def network_names(request: Request) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(base, upsampler, CLIP encoders) the request needs; None where a stage does not run."""
    base = None if request.mode == Mode.UPSAMPLE else request.base_model
    clip = checkpoints.clip_encoders_for(request.base_model) if request.guidance.uses_clip else ()
    return base, request.upsample_model, clip


def load_network(name: str, device: str):
    try:
        return checkpoints.load_network(name, device)
    except (checkpoints.MissingWeightsError, checkpoints.OfflineError):
        message = f"the checkpoint {name!r} is not downloaded: glide-studio download {name}"
        raise ModelUnavailableError(message) from None
    except checkpoints.CheckpointError as error:
        raise ModelUnavailableError(f"the checkpoint {name!r} could not be loaded: {error}") from error


def load_model_set(request: Request, device: str, precision: str = "auto", *,
                   loaded: MutableMapping[tuple[str, str], object] | None = None, **sizes) -> ModelSet:
    """The networks the request needs on `device` in `precision` (auto, fp32, bf16, fp16).

    `loaded` keeps networks between calls (the editor's engine passes one): a network found there is not read
    again, and networks this request does not need are dropped from it. `sizes`: ModelSet's base_size /
    upsample_size overrides. A Stable Diffusion request gets its model from `load_sd_model_set` instead."""
    if request.family is Family.SD:
        return load_sd_model_set(request, device, precision, loaded=loaded)
    base, upsample, clip = network_names(request)
    wanted = [name for name in (base, upsample, *clip) if name]
    cache = loaded if loaded is not None else {}
    for key in [key for key in cache if key not in {(name, device) for name in wanted}]:
        del cache[key]
    for name in wanted:
        if (name, device) not in cache:
            cache[(name, device)] = load_network(name, device)
    network = {name: cache[(name, device)] for name in wanted}
    clip_image, clip_text = (network[name] for name in clip) if clip else (None, None)
    if upsample is None:
        sizes.pop("upsample_size", None)
    return ModelSet.prepared(choose_precision(device, precision), network.get(base), network.get(upsample),
                             clip_image, clip_text, **sizes)


def load_sd_model_set(request: Request, device: str, precision: str = "auto", *,
                      loaded: MutableMapping[tuple[str, str], object] | None = None, progress_class=None):
    """The request's Stable Diffusion model (the sd extra), kept in `loaded` per device and precision; a model
    from the Hub is fetched first, with `progress_class` (a tqdm class) showing the bytes."""
    from glide_studio import sd

    if not sd.available():
        raise ModelUnavailableError(f"{request.base_model!r} is a Stable Diffusion model. {sd.INSTALL_HINT}")
    from glide_studio.sd.loading import load_model

    key = (request.base_model, f"{device}/{precision}")
    cache = loaded if loaded is not None else {}
    for other in [other for other in cache if other != key]:
        del cache[other]
    if key not in cache:
        try:
            cache[key] = load_model(request.base_model, device, precision, progress_class=progress_class)
        except sd.SDError as error:
            raise ModelUnavailableError(f"the model {request.base_model!r} could not be loaded: {error}") from error
    from glide_studio.sd.loading import attach_ip_adapter

    try:
        attach_ip_adapter(cache[key], request, progress_class=progress_class)
    except sd.SDError as error:
        raise ModelUnavailableError(f"the IP-Adapter {request.ip_adapter!r} could not be loaded: {error}") from error
    return cache[key]


def background_captions(unet_name: str) -> tuple[str, ...]:
    """Captions of bare background in the words the model's CLIP learned (the shapes world's colours for the
    demo models)."""
    if checkpoints.get_spec(unet_name).source == "demo":
        from glide_studio.shapes.world import BACKGROUND_COLOURS

        return tuple(f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} background" for colour in BACKGROUND_COLOURS)
    return ("an empty background", "a plain background", "a blank wall", "an empty floor", "the sky", "grass")


# The demo CLIP's floor: chosen on held-out inpaint tasks 0-99 of eval_demo's missed_insertion suite, checked on
# tasks 100-199 (weights/MODEL_CARD.md). OpenAI's CLIP has none measured: only its background comparison flags.
DEMO_MISS_FLOOR = 0.35


def miss_floor(unet_name: str) -> float | None:
    return DEMO_MISS_FLOOR if checkpoints.get_spec(unet_name).source == "demo" else None


def load_scorer(request: Request, device: str, *, loaded: MutableMapping[tuple[str, str], object] | None = None):
    """A Scorer with the noised CLIP that belongs with the request's base model, or None when its weights are not
    on this machine (ranking is a courtesy: it never downloads, and never fails a run)."""
    from glide_studio.runs.scoring import Scorer

    if request.family is not Family.GLIDE:  # the noised CLIP encoders belong with GLIDE's models
        return None
    names = checkpoints.clip_encoders_for(request.base_model)
    cache = loaded if loaded is not None else {}
    try:
        for name in names:
            if (name, device) not in cache:
                cache[(name, device)] = checkpoints.load_network(name, device)
    except checkpoints.CheckpointError:
        return None
    image_encoder, text_encoder = (cache[(name, device)] for name in names)
    return Scorer(image_encoder, text_encoder, background_captions(request.base_model), miss_floor(request.base_model))
