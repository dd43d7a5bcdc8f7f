"""Caption retrieval of a noised CLIP on held-out shapes-world scenes, by timestep (the model card's table).

Each held-out scene is rendered, noised to timestep t, and its caption must rank first among ten: its own and
nine of other held-out scenes. A distractor that reads the same as the right caption counts as right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..diffusion.gaussian import Diffusion
from ..models import normalize_embedding
from ..models.tokenizers import clip_tokenize_prompts
from ..shapes import captions, world

HELD_OUT_SEED = 7_000_003  # the trainer seeds each step with [seed, step]: this stream is none of those
TIMESTEPS = (0, 250, 500, 750)
CHOICES = 10


def held_out_scenes(count: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(HELD_OUT_SEED)
    scenes = [world.sample_scene(rng) for _ in range(count)]
    pictures = np.stack([world.render(scene, 64, supersample=4) for scene in scenes])
    return pictures, [captions.describe(scene, rng) for scene in scenes]


@torch.no_grad()
def retrieval_accuracy(image_encoder, text_encoder, count: int = 200,
                       timesteps: Sequence[int] = TIMESTEPS) -> dict[int, float]:
    """Top-1 caption retrieval among CHOICES captions at each timestep."""
    pictures, texts = held_out_scenes(count)
    tokens, lengths = clip_tokenize_prompts(texts)
    text_z = normalize_embedding(text_encoder(tokens, lengths).float())
    alphas_cumprod = Diffusion(image_encoder.config.beta_schedule).alphas_cumprod
    x0 = torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    rng = np.random.default_rng(HELD_OUT_SEED + 1)
    distractors = [rng.choice([j for j in range(count) if j != i], CHOICES - 1, replace=False) for i in range(count)]
    found = {}
    for t in timesteps:
        gen = torch.Generator().manual_seed(HELD_OUT_SEED + t)
        acp = float(alphas_cumprod[t])
        x_t = acp ** 0.5 * x0 + (1 - acp) ** 0.5 * torch.randn(x0.shape, generator=gen)
        image_z = normalize_embedding(image_encoder((x_t + 1) * 127.5, torch.full((count,), t)).float())
        similarity = (image_z @ text_z.T).numpy()
        right = 0
        for i in range(count):
            choices = [i, *distractors[i]]
            best = choices[int(np.argmax(similarity[i, choices]))]
            right += texts[best] == texts[i]
        found[t] = right / count
    return found
