"""SDXL's conditioning: two CLIP text encoders, each read at its penultimate layer and joined along the feature
axis, the second one's pooled projection, and the size and crop "micro-conditioning" (time ids), which the UNet
takes as added conditioning beside the cross-attention.

An SDXL model is recognised by its UNet (``addition_embed_type == "text_time"``). Its folder's model_index.json
says how its own pipeline conditions it: ``force_zeros_for_empty_prompt`` (an empty negative prompt is zeros,
not the encoding of "") and ``requires_aesthetics_score`` (the refiner's (size, crop, score) ids instead of
(size, crop, target size)); both are followed here, so a run matches what the model was tuned with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from glide_studio.sd.errors import SDModelError

AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5  # the refiner pipeline's defaults


def is_sdxl(unet_config) -> bool:
    return getattr(unet_config, "addition_embed_type", None) == "text_time"


@dataclass
class SDXLParts:
    """What an SDXL model has beyond SD 1.x: the second text encoder (with its projection) and its tokenizer, and
    the two flags of its pipeline."""

    text_encoder_2: Any
    tokenizer_2: Any
    force_zeros_for_empty_prompt: bool = True
    requires_aesthetics_score: bool = False

    def to(self, device, dtype) -> SDXLParts:
        self.text_encoder_2 = self.text_encoder_2.to(device, dtype).eval()
        return self


def load_parts(folder: Path) -> SDXLParts:
    """The second text encoder and tokenizer of an SDXL diffusers folder, and its pipeline's flags."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    weights = folder / "text_encoder_2" / "model.safetensors"
    if not weights.is_file():
        raise SDModelError(f"{folder} holds an SDXL UNet but no text_encoder_2/model.safetensors (SDXL reads two "
                           "text encoders)")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    index = index if isinstance(index, dict) else {}
    return SDXLParts(
        CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2", use_safetensors=True),
        CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)),
        requires_aesthetics_score=bool(index.get("requires_aesthetics_score", False)),
    )


def _encode(encoders, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L, sum of the encoders' widths) penultimate-layer states and (N, P) the last encoder's pooled
    projection."""
    states, pooled = [], None
    for tokenizer, encoder in encoders:
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        output = encoder(ids, output_hidden_states=True)
        states.append(output.hidden_states[-2])
        pooled = output[0]  # CLIPTextModelWithProjection's text_embeds: (N, projection_dim)
    return torch.cat(states, dim=-1), pooled


def _time_ids(models, parts: SDXLParts, negative: bool) -> list[float]:
    side = float(models.model_size)
    if parts.requires_aesthetics_score:
        return [side, side, 0.0, 0.0, NEGATIVE_AESTHETIC_SCORE if negative else AESTHETIC_SCORE]
    return [side, side, 0.0, 0.0, side, side]


def check_added_width(models, parts: SDXLParts) -> None:
    """The UNet's added-embedding input must be what the time ids and the pooled projection make; a model whose
    flags do not match its UNet gets a clear message before the first step, not a shape error inside it."""
    unet = models.unet
    time_width = int(unet.config.addition_time_embed_dim) * len(_time_ids(models, parts, False))
    made = time_width + int(parts.text_encoder_2.config.projection_dim)
    expected = int(unet.add_embedding.linear_1.in_features)
    if made != expected:
        raise SDModelError(f"{models.name}: its UNet expects {expected} added-conditioning values, its time ids and "
                           f"text projection make {made} (requires_aesthetics_score in model_index.json is "
                           f"{parts.requires_aesthetics_score}; it should match the UNet)")


@torch.no_grad()
def conditioning(models, prompt: str, negative_prompt: str, batch: int,
                 guided: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(embeddings, added conditioning) of a run: the negative prompt's rows first when guided, then the prompt's,
    as the SD 1.x path orders them."""
    parts: SDXLParts = models.sdxl
    encoders = [(tokenizer, encoder) for tokenizer, encoder in ((models.tokenizer, models.text_encoder),
                                                                (parts.tokenizer_2, parts.text_encoder_2))
                if encoder is not None]
    device = models.device
    states, pooled = _encode(encoders, [prompt], device)
    rows_states, rows_pooled = [states.expand(batch, -1, -1)], [pooled.expand(batch, -1)]
    rows_ids = [torch.tensor([_time_ids(models, parts, False)] * batch)]
    if guided:
        if not negative_prompt.strip() and parts.force_zeros_for_empty_prompt:
            negative_states, negative_pooled = torch.zeros_like(states), torch.zeros_like(pooled)
        else:
            negative_states, negative_pooled = _encode(encoders, [negative_prompt], device)
        rows_states.insert(0, negative_states.expand(batch, -1, -1))
        rows_pooled.insert(0, negative_pooled.expand(batch, -1))
        rows_ids.insert(0, torch.tensor([_time_ids(models, parts, True)] * batch))
    dtype = models.unet_dtype
    added = {"text_embeds": torch.cat(rows_pooled).to(device, dtype),
             "time_ids": torch.cat(rows_ids).to(device, dtype)}
    return torch.cat(rows_states).to(dtype), added
