"""How well each candidate shows its caption: the noised CLIP (at t = 0) scores the region the run changed.

A candidate is scored on a square crop around what the run regenerated (the mask's bounds, or the whole
picture for a generation), resized to the encoder's input, against the caption. For an inpaint the same crop
is also scored against captions of bare background: when the caption does not beat them, the model most
likely filled the hole with background instead of the object (GLIDE's "missed insertion").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from glide_studio.models.noised_clip import normalize_embedding
from glide_studio.models.tokenizers import clip_tokenize_prompts
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.record import CandidateScore

CROP_MARGIN = 1.25  # the crop's side over the region's longest side: some context, as the encoder learned


def region_box(mask: np.ndarray | None, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, side, side) of the square crop around the mask's bounds (the whole picture without a mask),
    shifted to lie inside the picture."""
    width, height = size
    if mask is None or not np.any(mask):
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    rows, cols = np.nonzero(mask)
    extent = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    side = int(min(max(round(extent * CROP_MARGIN), 8), width, height))
    centre_x, centre_y = (cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2
    left = int(round(min(max(centre_x - side / 2, 0), width - side)))
    top = int(round(min(max(centre_y - side / 2, 0), height - side)))
    return left, top, side, side


def crops(images: np.ndarray, mask: np.ndarray | None, encoder_size: int) -> np.ndarray:
    """(N, s, s, 3) uint8 crops of the candidates around the regenerated region."""
    height, width = images.shape[1:3]
    if mask is not None and mask.shape[:2] != (height, width):
        mask = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize((width, height)))
    left, top, side, _ = region_box(mask, (width, height))
    return np.stack([
        np.asarray(Image.fromarray(image[top:top + side, left:left + side]).resize(
            (encoder_size, encoder_size), Image.Resampling.BILINEAR))
        for image in images
    ])


class Scorer:
    """A noised CLIP pair at t = 0, scoring pictures against captions."""

    def __init__(self, image_encoder: torch.nn.Module, text_encoder: torch.nn.Module,
                 background_captions: Sequence[str], floor: float | None = None) -> None:
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.background_captions = tuple(background_captions)
        self.floor = floor
        self.size = int(image_encoder.config.image_size)
        self.device = next(image_encoder.parameters()).device

    @torch.no_grad()
    def text_embeddings(self, captions: Sequence[str]) -> torch.Tensor:
        tokens, lengths = clip_tokenize_prompts(list(captions))
        return normalize_embedding(self.text_encoder(tokens.to(self.device), lengths.to(self.device)).float())

    @torch.no_grad()
    def image_embeddings(self, pictures: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).float().to(self.device)
        t = torch.zeros(x.shape[0], dtype=torch.long, device=self.device)
        return normalize_embedding(self.image_encoder(x, t).float())

    def similarities(self, pictures: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        """(N pictures, M captions) cosine similarities; pictures are encoder-size uint8 crops."""
        return (self.image_embeddings(pictures) @ self.text_embeddings(captions).T).cpu().numpy()

    def score(self, request: Request, images: np.ndarray) -> tuple[CandidateScore, ...]:
        """One score per candidate (N, H, W, 3) of the request; the background comparison for inpaints."""
        mask = request.mask if request.mode in (Mode.INPAINT, Mode.SDEDIT) else None
        pictures = crops(images, mask, self.size)
        inpaint = request.mode == Mode.INPAINT and bool(request.prompt.strip())
        captions = [request.prompt, *(self.background_captions if inpaint else ())]
        table = self.similarities(pictures, captions)
        return tuple(CandidateScore(float(row[0]), float(row[1:].max()), self.floor) if inpaint
                     else CandidateScore(float(row[0])) for row in table)


def ranked(scores: Sequence[CandidateScore]) -> list[int]:
    """Candidate indices, best match first (a stable order: ties keep the run's order)."""
    return sorted(range(len(scores)), key=lambda index: -scores[index].similarity)
