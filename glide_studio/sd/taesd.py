"""TAESD, when the user has it: a tiny distilled decoder of the same latents (diffusers' `AutoencoderTiny`) that
shows each step at full resolution with its detail, for a few per cent of a step's time, instead of the linear
projection (preview.py).

It is used when its folder is on this machine: downloaded with `glide-studio sd-download taesd` (taesdxl for
SDXL) into the Hub cache, or a folder of that name under GLIDE_STUDIO_SD_MODELS. The final picture is always the
model's own VAE decode."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from glide_studio.sd import hub
from glide_studio.sd.registry import MODELS_PATH_VARIABLE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownTinyDecoder:
    """TAESD: a tiny decoder of a family's latents, for full-resolution previews of every step."""

    name: str
    repo_id: str
    description: str
    size_mb: float
    licence: str


KNOWN_TINY_DECODERS: tuple[KnownTinyDecoder, ...] = (
    KnownTinyDecoder("taesd", "madebyollin/taesd", "TAESD: step previews at full resolution for SD 1.x / 2.x", 9.8,
                     "MIT"),
    KnownTinyDecoder("taesdxl", "madebyollin/taesdxl", "TAESD for SDXL: step previews at full resolution", 9.8, "MIT"),
)
TINY_DECODER_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


def tiny_decoder_for(sdxl: bool) -> KnownTinyDecoder:
    return KNOWN_TINY_DECODERS[1 if sdxl else 0]


def known_tiny_decoder(name: str) -> KnownTinyDecoder | None:
    return next((decoder for decoder in KNOWN_TINY_DECODERS if decoder.name == name), None)


def folder(repo_id: str) -> Path | None:
    """The TAESD folder for `repo_id` on this machine (the Hub cache, or a folder of its name under the user's
    models path), or None; never downloads."""
    cached = hub.cached_files(repo_id, TINY_DECODER_FILES)
    if cached is not None:
        return cached
    name = repo_id.rsplit("/", 1)[-1]
    for entry in filter(None, os.environ.get(MODELS_PATH_VARIABLE, "").split(os.pathsep)):
        found = Path(entry).expanduser() / name
        if all((found / file).is_file() for file in TINY_DECODER_FILES):
            return found
    return None


def load_for(sdxl: bool, device, latent_channels: int):
    """The TAESD decoder that fits the model's latents (SD 1.x/2.x or SDXL), in float32 on `device`, when it is on
    this machine; else None. A broken TAESD folder is skipped with a log line: it never fails the model's load."""
    found = folder(tiny_decoder_for(sdxl).repo_id)
    if found is None:
        return None
    import torch
    from diffusers import AutoencoderTiny

    try:
        decoder = AutoencoderTiny.from_pretrained(found, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        log.warning("TAESD in %s is not readable (%s); previews use the linear projection", found, error)
        return None
    if int(decoder.config.latent_channels) != latent_channels:
        log.warning("TAESD in %s decodes %s latent channels, the model has %s; previews use the linear projection",
                    found, decoder.config.latent_channels, latent_channels)
        return None
    return decoder.to(device, torch.float32).eval()


def decode(decoder, latents):
    """(N, C, h, w) latents as the UNet sees them -> (N, 3, H, W) RGB in [-1, 1]."""
    import torch

    with torch.no_grad():
        return decoder.decode(latents.float().to(next(decoder.parameters()).device)).sample.clamp(-1, 1)
