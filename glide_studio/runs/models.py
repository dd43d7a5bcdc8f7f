"""The one way a request's networks are loaded: the GUI engine, the command line and the benchmarks all
call `load_model_set`."""

from __future__ import annotations

from collections.abc import MutableMapping

from glide_studio import checkpoints
from glide_studio.models import choose_precision
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Guidance, Mode, Request
from glide_studio.runs.errors import ModelUnavailableError

CLIP_ENCODERS = ("clip-image-enc", "clip-text-enc")


def network_names(request: Request) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(base, upsampler, CLIP encoders) the request needs; None where a stage does not run."""
    base = None if request.mode == Mode.UPSAMPLE else request.base_model
    clip = CLIP_ENCODERS if request.guidance == Guidance.CLIP else ()
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
    upsample_size overrides."""
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
