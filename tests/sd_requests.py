"""The pictures the Stable Diffusion tests run on (a random 50 × 40 picture, a rectangle of it masked, a red
stroke sketched inside the mask) and a request of any mode on them."""

from __future__ import annotations

import numpy as np

from glide_studio.pipelines.request import Mode, Request

WIDTH, HEIGHT = 50, 40


def picture(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def mask() -> np.ndarray:
    painted = np.zeros((HEIGHT, WIDTH), np.uint8)
    painted[10:26, 12:31] = 255
    return painted


def sketch() -> np.ndarray:
    strokes = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    strokes[12:22, 14:28] = (230, 20, 20, 255)
    return strokes


def sd_request(mode: Mode, name: str, **fields) -> Request:
    """A request of `mode` on the model `name`: two candidates of "a red circle" on the mode's inputs, then
    `fields` over them."""
    inputs = {Mode.INPAINT: dict(image=picture(), mask=mask()),
              Mode.SDEDIT: dict(image=picture(), mask=mask(), sketch=sketch()), Mode.GENERATE: {}}[mode]
    return Request(**{"mode": mode, "base_model": name, "prompt": "a red circle", "batch": 2, "guidance_scale": 7.5,
                      **inputs, **fields})
