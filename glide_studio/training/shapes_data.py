"""Training batches from the shapes world, for the demo base-inpaint and upsample-inpaint models.

Each example is one of three tasks, so one network serves every mode of the app:
- object inpainting: a box around one object is regenerated from a caption naming that object (a box,
  not the silhouette, so the caption and not the hole's outline must carry the shape);
- generation: everything is regenerated from a caption of the whole scene;
- free-form: a random box or ellipse, captioned with the whole scene.
15 % of captions are empty, for classifier-free guidance. Object inpainting dominates the mix: it is the
task where only the caption says what belongs in the hole, which is what teaches the text pathway.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.tokenizers import tokenize_prompts
from ..shapes import world
from .demo_configs import DEMO_BASE_INPAINT_OPTIONS, DEMO_UPSAMPLE_INPAINT_OPTIONS

EMPTY_CAPTION_RATE = 0.15
POSITION_WORDS = {(0, 1): "on the left", (2, 1): "on the right", (1, 0): "at the top", (1, 2): "at the bottom",
                  (1, 1): "in the middle"}


def object_phrase(obj: world.ShapeObject, rng: np.random.Generator | None = None) -> str:
    """"a red circle", sometimes with its size and place: "a large red circle on the left"."""
    words = ["a"]
    if rng is not None and rng.random() < 0.3:
        words.append(obj.size)
    words += [obj.colour, obj.kind]
    if rng is not None and rng.random() < 0.3:
        place = POSITION_WORDS.get((min(2, int(obj.cx * 3)), min(2, int(obj.cy * 3))))
        if place:
            words.append(place)
    return " ".join(words)


def scene_caption(scene: world.Scene, rng: np.random.Generator) -> str:
    """The whole scene: its objects joined by "and", sometimes with the background named."""
    caption = " and ".join(object_phrase(obj, rng) for obj in scene.objects)
    if not caption or rng.random() < 0.3:
        background = f"a {scene.background.colour} background"
        caption = f"{caption} on {background}" if caption else background
    return caption


def free_form_region(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random box or ellipse covering 10-60 % of the side, for unconstrained inpainting."""
    height, width = (rng.uniform(0.15, 0.6, size=2) * size).astype(int) + 1
    top, left = rng.integers(0, size - height + 1), rng.integers(0, size - width + 1)
    region = np.zeros((size, size), dtype=np.float32)
    if rng.random() < 0.5:
        region[top:top + height, left:left + width] = 1.0
    else:
        yy, xx = np.mgrid[:size, :size]
        cy, cx = top + height / 2, left + width / 2
        region[((yy - cy) / (height / 2)) ** 2 + ((xx - cx) / (width / 2)) ** 2 <= 1.0] = 1.0
    return region


def _object_box(rng: np.random.Generator, scene: world.Scene, index: int, size: int) -> np.ndarray:
    rows, cols = np.nonzero(world.object_mask(scene, index, size))
    margin = int(round(size * rng.uniform(0.02, 0.12)))
    top, bottom = max(0, rows.min() - margin), min(size, rows.max() + 1 + margin)
    left, right = max(0, cols.min() - margin), min(size, cols.max() + 1 + margin)
    region = np.zeros((size, size), dtype=np.float32)
    region[top:bottom, left:right] = 1.0
    return region


def sample_example(rng: np.random.Generator, size: int = 64) -> tuple[world.Scene, np.ndarray, str]:
    """(scene, region to regenerate at `size` px (1 = regenerate), caption)."""
    scene = world.sample_scene(rng)
    task = rng.random()
    if task < 0.6 and scene.objects:
        index = int(rng.integers(len(scene.objects)))
        region = _object_box(rng, scene, index, size)
        caption = object_phrase(scene.objects[index], rng)
    elif task < 0.85:
        region = np.ones((size, size), dtype=np.float32)
        caption = scene_caption(scene, rng)
    else:
        region = free_form_region(rng, size)
        caption = scene_caption(scene, rng)
    if rng.random() < EMPTY_CAPTION_RATE:
        caption = ""
    return scene, region, caption


def _to_model_range(images: list[np.ndarray]) -> torch.Tensor:
    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def base_inpaint_batch(rng: np.random.Generator, batch_size: int,
                       text_ctx: int = DEMO_BASE_INPAINT_OPTIONS["text_ctx"]) -> dict[str, torch.Tensor]:
    images, keeps, captions = [], [], []
    for _ in range(batch_size):
        scene, region, caption = sample_example(rng, 64)
        images.append(world.render(scene, 64, supersample=4))
        keeps.append(1.0 - region)
        captions.append(caption)
    x0 = _to_model_range(images)
    tokens, mask = tokenize_prompts(captions, text_ctx)
    known = torch.from_numpy(np.stack(keeps))[:, None]
    return {"x0": x0, "tokens": tokens, "mask": mask, "inpaint_image": x0 * known, "inpaint_mask": known}


def upsample_inpaint_batch(rng: np.random.Generator, batch_size: int, crop: int = 64,
                           text_ctx: int = DEMO_UPSAMPLE_INPAINT_OPTIONS["text_ctx"]) -> dict[str, torch.Tensor]:
    """Random crops of 256 px scenes with the matching crop of their 64 px render as low_res: the network
    is convolutional, so crops teach the same 4x upsampling at a fraction of the cost."""
    highs, lows, keeps, captions = [], [], [], []
    for _ in range(batch_size):
        scene, region64, caption = sample_example(rng, 64)
        low, high = world.render_pair(scene)
        region = np.kron(region64, np.ones((4, 4), dtype=np.float32))
        top, left = (int(v) * 4 for v in rng.integers(0, (256 - crop) // 4 + 1, size=2))
        highs.append(high[top:top + crop, left:left + crop])
        lows.append(low[top // 4:(top + crop) // 4, left // 4:(left + crop) // 4])
        keeps.append(1.0 - region[top:top + crop, left:left + crop])
        captions.append(caption)
    x0 = _to_model_range(highs)
    tokens, mask = tokenize_prompts(captions, text_ctx)
    known = torch.from_numpy(np.stack(keeps))[:, None]
    return {"x0": x0, "low_res": _to_model_range(lows), "tokens": tokens, "mask": mask,
            "inpaint_image": x0 * known, "inpaint_mask": known}
