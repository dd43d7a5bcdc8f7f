"""Loading a Stable Diffusion model by its name: "sd:" + a known name (registry), a Hub repository id
("owner/name"), a local diffusers folder or a single-file .safetensors checkpoint. Weights are read only from
safetensors: a pickled checkpoint (.ckpt, .bin, .pt) is refused, never opened."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from glide_studio.models.precision import Precision, choose_precision
from glide_studio.pipelines.request import SD_MODEL_PREFIX
from glide_studio.sd import gligen, hub, ip_adapter, registry, require, sdxl, taesd, unclip
from glide_studio.sd.components import SDModelSet
from glide_studio.sd.errors import SDModelError
from glide_studio.sd.preview import fit_projection

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")


@dataclass(frozen=True)
class Source:
    """Where a model name points: a diffusers `folder`, a single `file`, or a Hub `repo_id` to fetch."""

    name: str
    folder: Path | None = None
    file: Path | None = None
    repo_id: str | None = None


def resolve(name: str) -> Source:
    if not name.startswith(SD_MODEL_PREFIX):
        raise SDModelError(f"{name!r} is not a Stable Diffusion model name (they start with {SD_MODEL_PREFIX!r})")
    spec = name[len(SD_MODEL_PREFIX):].strip()
    known = registry.known(spec)
    if known is not None:
        return Source(name, repo_id=known.repo_id)
    path = Path(spec).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SDModelError(f"{path.name} is a pickled checkpoint, which can run code when opened; use its "
                           ".safetensors version (or convert it where you trust it)")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise SDModelError(f"{path} is not a diffusers folder (it has no model_index.json)")
        return Source(name, folder=path)
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise SDModelError(f"{path}: no such file")
        return Source(name, file=path)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return Source(name, repo_id=spec)
    names = ", ".join(model.name for model in registry.KNOWN_MODELS)
    raise SDModelError(f"no Stable Diffusion model {spec!r}: give a known name ({names}), a Hub repository id "
                       "(owner/name), a diffusers folder or a .safetensors file")


def short_hash(path: Path) -> str:
    """A1111's model hash: the first 10 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]


def folder_of(source: Source, *, progress_class=None) -> Path:
    if source.folder is not None:
        return source.folder
    if source.file is not None:
        raise SDModelError("a single file has no folder")
    return hub.fetch(source.repo_id, progress_class=progress_class)


def _weights_file(folder: Path, subfolder: str, filename: str) -> Path:
    path = folder / subfolder / filename
    if not path.is_file():
        pickled = [found.name for found in (folder / subfolder).glob("*") if found.suffix in PICKLE_SUFFIXES]
        hint = f" (only the pickled {', '.join(pickled)} is there, which is never opened)" if pickled else ""
        raise SDModelError(f"{folder} has no {subfolder}/{filename}{hint}")
    return path


def _components_from_folder(folder: Path) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet_file = _weights_file(folder, "unet", "diffusion_pytorch_model.safetensors")
    _weights_file(folder, "vae", "diffusion_pytorch_model.safetensors")
    _weights_file(folder, "text_encoder", "model.safetensors")
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise SDModelError(f"{folder} has no scheduler/scheduler_config.json")
    try:
        return {
            "unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True),
            "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True),
            "text_encoder": CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True),
            "tokenizer": CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            "scheduler_config": dict(json.loads(scheduler_file.read_text())),
            "weights": unet_file,
            "unclip": unclip.load_parts(folder) if unclip.is_unclip_folder(folder) else None,
        }
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise SDModelError(f"{folder} could not be read as a Stable Diffusion model: {error}") from error


def _components(source: Source, progress_class=None) -> dict:
    if source.file is not None:
        from glide_studio.sd.single_file import components_from_file

        return components_from_file(source.file, progress_class=progress_class)
    folder = folder_of(source, progress_class=progress_class)
    parts = _components_from_folder(folder)
    if sdxl.is_sdxl(parts["unet"].config):
        parts["sdxl"] = sdxl.load_parts(folder)
    return parts


@contextlib.contextmanager
def _quiet_libraries():
    """diffusers' and transformers' own loading bars and notes (weights read from a local file in a second, a cast
    they advise against for training) would bury the run's progress; a Hub download keeps its bars."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bars = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        for module, enabled in zip((diffusers_logging, transformers_logging), bars, strict=True):
            if enabled:
                module.enable_progress_bar()


def load_model(name: str, device: str = "cpu", precision: str | Precision = "auto", *,
               progress_class=None) -> SDModelSet:
    """The model's components on `device` in `precision` (auto: fp16 on CUDA, bf16 on CPUs with native bf16,
    else fp32), in eval mode, with the preview projection fitted to its VAE."""
    require()
    import torch

    chosen = precision if isinstance(precision, Precision) else choose_precision(device, precision)
    source = resolve(name)
    dtype = chosen.autocast_dtype or (torch.float16 if chosen.fp16_weights else torch.float32)
    with _quiet_libraries():
        parts = _components(source, progress_class)
        check_supported(parts["unet"].config, name, unclip=parts.get("unclip") is not None)
        gligen.check_supported(parts["unet"].config, name)
        unet = parts["unet"].to(chosen.device, dtype).eval()
        text_encoder = parts["text_encoder"].to(chosen.device, dtype).eval()
        second_encoder = parts.get("sdxl") and parts["sdxl"].to(chosen.device, dtype)
        vae = parts["vae"].to(chosen.device, torch.float32).eval()
        tiny_decoder = taesd.load_for(bool(second_encoder), chosen.device, int(vae.config.latent_channels))
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    weight, bias = fit_projection(vae, scale, float(vae.config.scaling_factor), chosen.device)
    variations = parts.get("unclip") and unclip.to_device(parts["unclip"], chosen.device, dtype)
    models = SDModelSet(name, unet, vae, text_encoder, parts["tokenizer"], parts["scheduler_config"], chosen,
                        weight, bias, model_hash=short_hash(parts["weights"]), source=str(parts["weights"]),
                        unclip=variations, sdxl=second_encoder,
                        preview_decoder=tiny_decoder)
    if second_encoder:
        sdxl.check_added_width(models, second_encoder)
    return models


def attach_ip_adapter(models: SDModelSet, request, *, progress_class=None) -> None:
    """The request's IP-Adapter installed in the loaded model when the request has a reference picture."""
    with _quiet_libraries():
        ip_adapter.attach_for(models, request, progress_class=progress_class)


def check_supported(unet_config, name: str, unclip: bool = False) -> None:
    """SD 1.x / 2.x and SDXL UNets: another kind (an upscaler's noise-level class embedding, a Kandinsky-style
    image embedding) is refused by name, not left to fail inside the first step. An unCLIP UNet's projection class
    embedding is fed by its image parts."""
    class_embedding = getattr(unet_config, "class_embed_type", None)
    if unclip and class_embedding == "projection":
        class_embedding = None
    addition = getattr(unet_config, "addition_embed_type", None)
    if addition == "text_time":  # SDXL's size and crop conditioning: sdxl.py feeds it
        addition = None
    if addition is not None or class_embedding:
        raise SDModelError(f"{name} is an upscaler or another kind of model (its UNet takes extra conditioning); "
                           "this version runs Stable Diffusion 1.x, 2.x and SDXL models")


def is_present(name: str) -> bool:
    """Whether the model can be loaded without a download (never fetches)."""
    try:
        source = resolve(name)
    except SDModelError:
        return False
    if source.repo_id is None:
        return True
    return hub.cached_folder(source.repo_id) is not None
