"""Captioned pictures from the shapes world for the demo noised CLIP.

Three kinds of example, so one encoder pair serves the three ways the app asks it something:
- a whole scene with its caption (CLIP guidance of a generation, retrieval);
- a square crop around one object with that object's phrase, the way the app crops a candidate around an
  inpainted region (CLIP guidance of an inpaint, ranking candidates, flagging a missed insertion);
- a crop of bare background with its background phrase ("a blue background"), the caption a missed
  insertion resembles more than the caption the user typed.
Crops are cut from a 64 or 128 px render and resized to the encoder's 64 px, as the app resizes its crops
(of a 64 px base result, or of an upsampled one).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..shapes import captions, world

IMAGE_SIZE = 64
CROP_RENDER_SIZES = (64, 128)
WHOLE_SCENE_SHARE, OBJECT_CROP_SHARE = 0.45, 0.35  # the rest: background crops


def square_crop(picture: np.ndarray, centre: tuple[float, float], side: float) -> np.ndarray:
    """The square of `side` px around `centre` (x, y in px), shifted to lie inside the picture, resized to the
    encoder's size."""
    height, width = picture.shape[:2]
    side = int(round(min(max(side, 8), height, width)))
    left = int(round(min(max(centre[0] - side / 2, 0), width - side)))
    top = int(round(min(max(centre[1] - side / 2, 0), height - side)))
    crop = Image.fromarray(picture[top:top + side, left:left + side])
    return np.asarray(crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))


def _object_crop(rng: np.random.Generator, scene: world.Scene) -> tuple[np.ndarray, str]:
    index = int(rng.integers(len(scene.objects)))
    obj = scene.objects[index]
    size = CROP_RENDER_SIZES[rng.integers(len(CROP_RENDER_SIZES))]
    picture = world.render(scene, size, supersample=4 if size == 64 else 2)
    side = 2 * obj.bounding_radius * size * rng.uniform(1.15, 2.4)
    jitter = rng.uniform(-0.15, 0.15, size=2) * side
    centre = (obj.cx * size + jitter[0], obj.cy * size + jitter[1])
    return square_crop(picture, centre, side), captions.caption_for_object(scene, index, rng, position_probability=0)


def _background_crop(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    scene = world.sample_scene(rng, n_objects=0)
    size = CROP_RENDER_SIZES[rng.integers(len(CROP_RENDER_SIZES))]
    picture = world.render(scene, size, supersample=4 if size == 64 else 2)
    side = size * rng.uniform(0.25, 1.0)
    centre = tuple(rng.uniform(0, size, size=2))
    return square_crop(picture, centre, side), captions.background_phrase(scene, rng)


def clip_example(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(64 px uint8 RGB picture, its caption)."""
    kind = rng.random()
    if kind < WHOLE_SCENE_SHARE + OBJECT_CROP_SHARE:
        scene = world.sample_scene(rng)
        if kind >= WHOLE_SCENE_SHARE and scene.objects:
            return _object_crop(rng, scene)
        return world.render(scene, IMAGE_SIZE, supersample=4), captions.describe(scene, rng)
    return _background_crop(rng)


def clip_batch(rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, list[str]]:
    """(B, 64, 64, 3) uint8 pictures and their captions."""
    examples = [clip_example(rng) for _ in range(batch_size)]
    return np.stack([picture for picture, _ in examples]), [caption for _, caption in examples]
