"""GLIGEN grounding: boxes with phrases steer a Stable Diffusion UNet that has gated self-attention layers.

Each region's box is given to the UNet's position net in what the model sees (0..1 of the edit box's square,
x0, y0, x1, y1), beside the pooled CLIP embedding of its phrase; the net turns them into grounding tokens that the
gated self-attention layers attend to, passed through the UNet's cross-attention kwargs. The net has a fixed number
of slots (MAX_REGIONS): unused slots are masked out, and so are all slots of the unconditional half of a guided
batch. Grounding is applied in the first `grounding_share` of the steps only (GLIGEN's scheduled sampling: the
layout is decided early, the later steps refine it freely). No module's state is switched on or off for that: a
step without grounding is a step without the kwargs, which skips the gated layers exactly as disabling them does.

GLIGEN's inpainting UNet takes 9 channels in a layout of its own: the noisy latent, the picture's latent where it
is known, and a mask that is 1 where it is known (the inverse of SD inpainting's mask, which also comes first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from glide_studio.pipelines import editbox
from glide_studio.pipelines.request import MAX_REGIONS, Region, Request
from glide_studio.sd.errors import SDError, SDModelError

GATED = "gated"
"""The UNet's attention_type for a text-box GLIGEN model."""


def is_gligen(unet: Any) -> bool:
    return getattr(unet.config, "attention_type", "default") == GATED


def check_supported(unet_config: Any, name: str) -> None:
    """GLIGEN's text-and-image grounding (boxes with reference pictures) is refused by name, not left to fail in the
    first step."""
    if getattr(unet_config, "attention_type", "default") == "gated-text-image":
        raise SDModelError(f"{name} is a GLIGEN text-and-image model (boxes grounded on pictures); this version "
                           "grounds boxes on phrases only (a text-box GLIGEN model)")


@dataclass(frozen=True)
class Grounding:
    """What the position net reads at each grounded step: boxes (N, MAX_REGIONS, 4) in 0..1 of what the model sees,
    the phrases' pooled embeddings (N, MAX_REGIONS, D) and which slots hold a region (N, MAX_REGIONS); N is the
    UNet's batch (both halves of a guided one)."""

    boxes: torch.Tensor
    embeddings: torch.Tensor
    masks: torch.Tensor
    grounded_steps: int

    def attention_kwargs(self, index: int) -> dict | None:
        """The UNet's cross_attention_kwargs for step `index` (None past the grounded steps). A fresh dict each
        time: the UNet's blocks take their entries out of it."""
        if index >= self.grounded_steps:
            return None
        return {"gligen": {"boxes": self.boxes, "positive_embeddings": self.embeddings, "masks": self.masks}}


def model_boxes(regions: tuple[Region, ...], boxed: editbox.BoxedInput | None,
                model_size: int) -> list[tuple[float, float, float, float]]:
    """Each region as (x0, y0, x1, y1) in 0..1 of the square the model sees (the edit box's, or the model's own
    canvas when generating from nothing), clipped to it. A region that lies wholly outside it is refused."""
    if boxed is None:
        left, top, side_x, side_y = 0, 0, model_size, model_size
    else:
        left, top, side_x, side_y = boxed.square.x, boxed.square.y, boxed.square.width, boxed.square.height
    found = []
    for region in regions:
        corners = ((region.x0 - left) / side_x, (region.y0 - top) / side_y,
                   (region.x1 - left) / side_x, (region.y1 - top) / side_y)
        x0, y0, x1, y1 = (min(max(value, 0.0), 1.0) for value in corners)
        if x1 <= x0 or y1 <= y0:
            where = "the edit box" if boxed is not None else f"the {model_size} px canvas"
            raise SDError(f"the region {region.x0},{region.y0},{region.x1},{region.y1} ({region.phrase!r}) lies "
                          f"outside {where}; move it inside, or widen the box")
        found.append((x0, y0, x1, y1))
    return found


@torch.no_grad()
def _phrase_embeddings(models, phrases: list[str]) -> torch.Tensor:
    """(R, D): each phrase's pooled CLIP text embedding (the end-of-text token's), as GLIGEN was trained on."""
    tokenizer = models.tokenizer
    tokens = tokenizer(phrases, padding=True, truncation=True, max_length=tokenizer.model_max_length,
                       return_tensors="pt")
    output = models.text_encoder(input_ids=tokens.input_ids.to(models.device),
                                 attention_mask=tokens.attention_mask.to(models.device))
    return output.pooler_output


def check_regions(models, request: Request, boxed: editbox.BoxedInput | None) -> None:
    """Regions need a GLIGEN model, and each must reach into what the model sees."""
    if not request.regions:
        return
    if not is_gligen(models.unet):
        raise SDError(f"{models.name} is not a GLIGEN model, so it cannot follow boxes with phrases; pick a GLIGEN "
                      "model (sd:gligen-generation, sd:gligen-inpainting) or remove the regions")
    model_boxes(request.regions, boxed, models.model_size)


def grounding(models, request: Request, boxed: editbox.BoxedInput | None, guided: bool,
              total_steps: int) -> Grounding | None:
    """The run's grounding (None when it has no regions); `check_regions` has passed."""
    if not request.regions:
        return None
    corners = model_boxes(request.regions, boxed, models.model_size)
    dtype, device = models.unet_dtype, models.device
    count = len(corners)
    width = int(models.unet.position_net.positive_len)
    embeddings = torch.zeros((MAX_REGIONS, width), dtype=dtype, device=device)
    embeddings[:count] = _phrase_embeddings(models, [region.phrase for region in request.regions]).to(dtype)
    boxes = torch.zeros((MAX_REGIONS, 4), dtype=dtype, device=device)
    boxes[:count] = torch.tensor(corners, dtype=dtype, device=device)
    masks = torch.zeros(MAX_REGIONS, dtype=dtype, device=device)
    masks[:count] = 1
    batch = request.batch
    boxes, embeddings, masks = (value.unsqueeze(0).repeat(batch, *([1] * value.dim()))
                                for value in (boxes, embeddings, masks))
    if guided:  # the unconditional half (the negative prompt's rows, first) sees no regions
        boxes, embeddings = torch.cat([boxes, boxes]), torch.cat([embeddings, embeddings])
        masks = torch.cat([torch.zeros_like(masks), masks])
    return Grounding(boxes, embeddings, masks, int(request.grounding_share * total_steps))


def inpaint_conditioning(known: torch.Tensor, regenerate: torch.Tensor | None, batch: int) -> torch.Tensor:
    """GLIGEN's inpainting channels (N, C + 1, h, w): the known latents where known, then the mask of the known
    region. `regenerate` (N, 1, h, w) is 1 where the run draws (None: all of it, generating)."""
    keep = torch.zeros_like(known[:, :1]) if regenerate is None else 1 - regenerate[:1]
    return torch.cat([known * keep, keep], dim=1).expand(batch, -1, -1, -1)
