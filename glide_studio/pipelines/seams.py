"""Harmonising a regenerated region with the picture around it, so that no seam shows at the mask's edge.

A model's fill is rarely off in its detail; it is off in its tone: the whole region a few levels lighter or
bluer than the known pixels around it (the base model's colour drifts, the upsampler adds its own), and a
straight mask edge shows that as a step however the edge is feathered. `harmonise` removes that offset the
way Poisson blending does: at every pixel of the mask's edge it measures the difference between the known
pixels just outside and the fill just inside (each a local mean over a thin band, so grain does not count),
spreads those differences smoothly over the region (a membrane: push-pull over an image pyramid, then
relaxation), and adds them to the fill. At the edge the fill then continues the picture; deep inside it keeps
its own detail, shifted by a smooth offset only.

An edge sample where the fill has an object of its own against the known background (a new object drawn up
to the mask's edge) differs from its neighbours along the edge by far more than a tone offset does; such
samples are left out, so that a new object is never faded toward the background. numpy only.
"""

from __future__ import annotations

import numpy as np

HARMONY_MAX_OFFSET = 32.0
"""Edge samples further apart than this (0-255, any channel) are an object against the background, not a drift."""
HARMONY_MAX_SPREAD = 6.0
"""An edge sample counts only where both bands are smooth: their pixels' standard deviation (0-255) at most this.
An object's outline crossing the mask's edge, in the picture or in the fill, is not a tone to continue."""
HARMONY_TOLERANCE = 16.0
"""And where it agrees with its neighbours along the edge within this (0-255)."""
RELAX_ITERATIONS = 30
"""Jacobi sweeps after the pyramid fill, which settle its fine-scale kinks into a smooth membrane."""


def _box_sum(array: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 window around each pixel (zero outside), via an integral image."""
    height, width = array.shape[:2]
    padded = np.pad(array, [(radius + 1, radius), (radius + 1, radius)] + [(0, 0)] * (array.ndim - 2))
    total = padded.cumsum(axis=0, dtype=np.float64).cumsum(axis=1)
    side = 2 * radius + 1
    window = total[side:, side:] - total[:-side, side:] - total[side:, :-side] + total[:-side, :-side]
    return window[:height, :width].astype(np.float32)


def _local_mean(image: np.ndarray, where: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `image` over the pixels of `where` in each pixel's window, and how many there were."""
    count = _box_sum(where.astype(np.float32), radius)
    total = _box_sum(image * where[..., None], radius)
    return total / np.maximum(count, 1.0)[..., None], count


def _local_spread(image: np.ndarray, where: np.ndarray, radius: int, mean: np.ndarray) -> np.ndarray:
    """The largest channel's standard deviation of `image` over the pixels of `where` in each window."""
    squares, count = _local_mean(image * image, where, radius)
    return np.sqrt(np.maximum(squares - mean * mean, 0)).max(axis=-1)


def _upsample_linear(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear 2x upsampling of a coarse pyramid level onto the finer level's `shape` (pixel centres)."""
    out = array
    for axis, size in enumerate(shape):
        source = (np.arange(size, dtype=np.float32) + 0.5) / 2 - 0.5
        source = np.clip(source, 0, out.shape[axis] - 1)
        low = np.floor(source).astype(np.int64)
        high = np.minimum(low + 1, out.shape[axis] - 1)
        frac = (source - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out


def membrane(values: np.ndarray, weights: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """A smooth field through weighted samples: `values` (H,W,C) where `weights` (H,W) in [0, 1] is 1, and
    in between interpolated (push-pull pyramid, then Jacobi relaxation over `region` with the samples held)."""
    levels = []
    premultiplied, weight = values * weights[..., None], weights.astype(np.float32)
    while True:
        levels.append((premultiplied, weight))
        height, width = weight.shape
        if height <= 1 and width <= 1:
            break
        pad_h, pad_w = height % 2, width % 2
        premultiplied = np.pad(premultiplied, [(0, pad_h), (0, pad_w), (0, 0)])
        weight = np.pad(weight, [(0, pad_h), (0, pad_w)])
        half_h, half_w = (height + pad_h) // 2, (width + pad_w) // 2
        premultiplied = premultiplied.reshape(half_h, 2, half_w, 2, -1).sum(axis=(1, 3))
        weight = weight.reshape(half_h, 2, half_w, 2).sum(axis=(1, 3))
        clamp = np.where(weight > 1, 1 / np.maximum(weight, 1e-12), 1).astype(np.float32)
        premultiplied, weight = premultiplied * clamp[..., None], weight * clamp
    top_values, top_weight = levels[-1]
    filled = np.where(top_weight[..., None] > 0, top_values / np.maximum(top_weight, 1e-12)[..., None], 0)
    for premultiplied, weight in reversed(levels[:-1]):
        coarse = _upsample_linear(filled, weight.shape)
        filled = premultiplied + (1 - weight)[..., None] * coarse
    if region is None:
        return filled.astype(np.float32)
    held = weights >= 1
    free = region & ~held
    for _ in range(RELAX_ITERATIONS):
        p = np.pad(filled, [(1, 1), (1, 1), (0, 0)], mode="edge")
        average = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4
        filled = np.where(free[..., None], average, filled)
    return filled.astype(np.float32)


def _edge(inside: np.ndarray) -> np.ndarray:
    """Pixels of `inside` with a 4-neighbour outside it (the crop's border does not count as outside)."""
    p = np.pad(inside, 1, mode="edge")
    return inside & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])


def harmonise(fill: np.ndarray, known: np.ndarray, inside: np.ndarray, band_px: int) -> np.ndarray:
    """`fill` (H,W,3) float32 shifted by a smooth offset inside `inside` so that it continues `known` (H,W,3)
    float32, the picture, across the mask's edge; pixels outside `inside` are returned unchanged.

    `band_px`: how far on each side of the edge the local means reach (two of the model's pixels, in the
    picture's); consensus along the edge is taken over eight times that."""
    inside = np.asarray(inside, dtype=bool)
    outside = ~inside
    if not inside.any() or not outside.any():
        return fill
    rows, cols = np.nonzero(inside)
    reach = 2 * band_px + 2
    top, left = max(rows.min() - reach, 0), max(cols.min() - reach, 0)
    bottom, right = min(rows.max() + 1 + reach, inside.shape[0]), min(cols.max() + 1 + reach, inside.shape[1])
    region = inside[top:bottom, left:right]
    fill_crop, known_crop = fill[top:bottom, left:right], known[top:bottom, left:right]
    known_mean, known_count = _local_mean(known_crop, ~region, band_px)
    fill_mean, fill_count = _local_mean(fill_crop, region, band_px)
    difference = (known_mean - fill_mean).astype(np.float32)
    smooth = ((_local_spread(known_crop, ~region, band_px, known_mean) <= HARMONY_MAX_SPREAD)
              & (_local_spread(fill_crop, region, band_px, fill_mean) <= HARMONY_MAX_SPREAD))
    samples = (_edge(region) & (known_count > 0) & (fill_count > 0) & smooth
               & (np.abs(difference).max(axis=-1) <= HARMONY_MAX_OFFSET))
    difference[~samples] = 0
    # Once more without the samples that disagree with their neighbours along the edge.
    local, count = _local_mean(difference, samples, 8 * band_px)
    weights = (samples & (np.abs(difference - local).max(axis=-1) <= HARMONY_TOLERANCE)).astype(np.float32)
    if not weights.any():
        return fill
    offset = membrane(difference, weights, region)
    out = fill.copy()
    out[top:bottom, left:right] = np.where(region[..., None], fill_crop + offset, fill_crop)
    return out
