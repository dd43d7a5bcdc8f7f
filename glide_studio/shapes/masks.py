"""Seeded inpainting masks for training, and SDEdit-style colour sketches.

Convention: a mask is float32 (size, size) with values in {0, 1}; 1 = REGENERATE (the painted region).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .world import Scene, ShapesError, object_alpha

MASK_KINDS: tuple[str, ...] = ("object", "box", "strokes", "all")
DEFAULT_MASK_WEIGHTS: dict[str, float] = {"object": 0.30, "box": 0.25, "strokes": 0.20, "all": 0.25}


@dataclass(frozen=True)
class TrainingMask:
    mask: np.ndarray  # float32 (size, size), 1 = regenerate
    kind: str  # one of MASK_KINDS
    object_index: int | None = None  # the object whose silhouette was masked, for its caption


def _check_size(size: int) -> None:
    if size < 8:
        raise ShapesError(f"mask size must be at least 8 pixels, got {size}")


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Bool mask grown by a square of `radius` pixels (Pillow max filter)."""
    if radius <= 0:
        return mask.astype(bool)
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.filter(ImageFilter.MaxFilter(2 * radius + 1))) > 127


def box_mask(rng: np.random.Generator, size: int, min_frac: float = 0.2, max_frac: float = 0.7) -> np.ndarray:
    """One axis-aligned rectangle covering 20-70 % of each side."""
    _check_size(size)
    h = max(1, int(round(rng.uniform(min_frac, max_frac) * size)))
    w = max(1, int(round(rng.uniform(min_frac, max_frac) * size)))
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    mask = np.zeros((size, size), np.float32)
    mask[top : top + h, left : left + w] = 1.0
    return mask


def stroke_mask(rng: np.random.Generator, size: int, max_strokes: int = 4) -> np.ndarray:
    """A few thick random brush strokes (polylines with round joints)."""
    _check_size(size)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, max_strokes + 1))):
        width = max(2, int(rng.uniform(0.05, 0.14) * size))
        x, y = rng.uniform(0.1, 0.9, size=2) * size
        angle = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for _ in range(int(rng.integers(2, 6))):
            angle += rng.uniform(-1.2, 1.2)
            step = rng.uniform(0.08, 0.25) * size
            x = float(np.clip(x + step * math.cos(angle), 0, size - 1))
            y = float(np.clip(y + step * math.sin(angle), 0, size - 1))
            points.append((x, y))
        draw.line(points, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in points:  # round caps
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return (np.asarray(img) > 127).astype(np.float32)


def object_silhouette_mask(scene: Scene, index: int, size: int, dilation: int | None = None) -> np.ndarray:
    """The object's silhouette dilated by a few pixels (default ~size/32), so its whole edge is redrawn."""
    _check_size(size)
    radius = max(1, size // 32) if dilation is None else dilation
    return dilate(object_alpha(scene, index, size) > 0.0, radius).astype(np.float32)


def full_mask(size: int) -> np.ndarray:
    """Everything regenerated: pure text-to-image."""
    _check_size(size)
    return np.ones((size, size), np.float32)


def sample_training_mask(
    rng: np.random.Generator,
    scene: Scene,
    size: int,
    weights: dict[str, float] | None = None,
) -> TrainingMask:
    """One random mask of a random kind (default 30 % object, 25 % box, 20 % strokes, 25 % all).

    Scenes without objects fall back to a box for the "object" kind.
    """
    weights = DEFAULT_MASK_WEIGHTS if weights is None else weights
    unknown = set(weights) - set(MASK_KINDS)
    if unknown or not weights or sum(weights.values()) <= 0:
        raise ShapesError(f"mask weights must be positive over {MASK_KINDS}, got {weights}")
    kinds = list(weights)
    probs = np.asarray([weights[k] for k in kinds], np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
    if kind == "object" and scene.objects:
        index = int(rng.integers(len(scene.objects)))
        dilation = int(rng.integers(1, max(2, size // 16) + 1))
        return TrainingMask(object_silhouette_mask(scene, index, size, dilation), "object", index)
    if kind in ("object", "box"):
        return TrainingMask(box_mask(rng, size), "box")
    if kind == "strokes":
        return TrainingMask(stroke_mask(rng, size), "strokes")
    return TrainingMask(full_mask(size), "all")


@dataclass(frozen=True)
class Sketch:
    image: np.ndarray  # uint8 (size, size, 3): the input image with a flat colour blob painted over it
    mask: np.ndarray  # float32 (size, size), 1 = the region to regenerate (covers the blob)
    blob: np.ndarray  # bool (size, size): where the colour was painted


def make_sketch(
    rng: np.random.Generator,
    scene: Scene,
    index: int,
    image: np.ndarray,
    colour: tuple[int, int, int] | None = None,
) -> Sketch:
    """A rough flat-colour blob of object `index` (jittered, dilated, blurred silhouette) over `image`.

    This imitates what an artist paints for SDEdit: the right colour, roughly the right place and
    extent, but not the exact shape.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.dtype != np.uint8:
        raise ShapesError(f"image must be uint8 (size, size, 3), got {image.dtype} {image.shape}")
    size = image.shape[0]
    obj = scene.objects[index] if 0 <= index < len(scene.objects) else None
    if obj is None:
        raise ShapesError(f"object index {index} out of range for a scene of {len(scene.objects)} objects")
    silhouette = Image.fromarray((object_alpha(scene, index, size) * 255).astype(np.uint8))
    shift = rng.uniform(-0.04, 0.04, size=2) * size
    scale = rng.uniform(0.9, 1.2)
    cx, cy = obj.cx * size, obj.cy * size
    # Inverse affine map for Pillow: output (x, y) samples input at centre + (p - centre - shift) / scale.
    a = 1.0 / scale
    coeffs = (a, 0.0, cx - a * (cx + shift[0]), 0.0, a, cy - a * (cy + shift[1]))
    warped = silhouette.transform((size, size), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    blur = max(1.0, size / 40 * rng.uniform(0.8, 2.0))
    blob = np.asarray(warped.filter(ImageFilter.GaussianBlur(blur))) > rng.uniform(60, 120)
    if not blob.any():
        blob = np.asarray(silhouette) > 127
    rgb = np.asarray(colour if colour is not None else obj.rgb, np.float32)
    rgb = np.clip(rgb + rng.normal(0, 6, size=3), 0, 255)
    sketched = image.copy()
    sketched[blob] = np.rint(rgb).astype(np.uint8)
    mask = dilate(blob, max(1, size // 32)).astype(np.float32)
    return Sketch(sketched, mask, blob)
