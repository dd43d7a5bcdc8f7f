"""Harmonising a regenerated region with the picture around it, so that no seam shows at the mask's edge.

A model's fill is rarely off in its detail; it is off in its tone: the whole region a few levels lighter or
bluer than the known pixels around it (the base model's colour drifts, the upsampler adds its own), and a
straight mask edge shows that as a step however the edge is feathered. `harmonise` removes that offset the
way Poisson blending does: at every pixel of the mask's edge it measures the difference between the known
pixels just outside and the fill just inside (each a local mean over a thin band, so grain does not count),
spreads those differences smoothly over the region (a membrane: push-pull over an image pyramid, then
relaxation), and adds them to the fill. At the edge the fill then continues the picture; deep inside it keeps
its own detail, shifted by a smooth offset only.

Only edge samples that describe a tone count: both bands smooth (no object's outline crossing the edge, in the
picture or in the fill), away from a border between two backgrounds on either side (the model draws a striped
background's borders a few pixels off the picture's, and a sample between the two borders compares two tones,
not a drift), the two sides at most `HARMONY_MAX_OFFSET` apart (farther is an object against the background,
such as a new object drawn up to the mask's edge, or a wrong colour, not a drift: it is never faded), and in
agreement with the other samples along their stretch of the edge. numpy only.
"""

from __future__ import annotations

import numpy as np

HARMONY_MAX_OFFSET = 32.0
"""Edge samples further apart than this (0-255, any channel) are an object against the background, not a drift."""
HARMONY_MAX_SPREAD = 6.0
"""An edge sample counts only where both bands are smooth: their pixels' standard deviation (0-255) at most this.
An object's outline crossing the mask's edge, in the picture or in the fill, is not a tone to continue."""
HARMONY_MAX_SLOPE = 1.0
"""Nor within a band of where either side's tone changes faster than this (0-255 per pixel, on local means two
bands wide): a border between two backgrounds. The model draws such borders a few pixels off the picture's, and
a sample there measures the misplaced border (up to the two tones' whole difference), not a drift. Stripes' soft
borders climb 2-7 levels per pixel, their flat stretches and a slope of texture stay under 1, and so does grain
up to a standard deviation of about 5."""
SLOPE_BANDS = 2
"""How wide (in bands) the local means are over which the slope is measured, and the step it is measured over."""
HARMONY_TOLERANCES = (16.0, 8.0, 4.0)
"""And where it agrees with the other samples along its stretch of the edge within each of these in turn (0-255):
a drift is smooth, a misplaced border is a short run of samples far off the rest."""
HARMONY_CONSENSUS_BANDS = 16
"""The stretch of edge (a radius, in bands) whose samples' mean is the consensus."""
RELAX_SWEEPS = 6
"""Jacobi sweeps at each pyramid level, which settle the coarser level's kinks into a smooth membrane."""
RELAX_MAX_PIXELS = 256 * 256
"""Levels larger than this are not relaxed: a mask crop of 1000 px would spend seconds smoothing kinks a few
pixels wide in an offset of a few levels, where bilinear interpolation of the relaxed coarser level already is."""


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


def _upsample_linear(array: np.ndarray, shape: tuple[int, int], factor: int = 2) -> np.ndarray:
    """Bilinear upsampling by `factor` onto `shape` (pixel centres; a coarse pixel covers factor x factor)."""
    out = array
    for axis, size in enumerate(shape):
        source = (np.arange(size, dtype=np.float32) + 0.5) / factor - 0.5
        source = np.clip(source, 0, out.shape[axis] - 1)
        low = np.floor(source).astype(np.int64)
        high = np.minimum(low + 1, out.shape[axis] - 1)
        frac = (source - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out


def _relax(field: np.ndarray, held: np.ndarray, sweeps: int) -> np.ndarray:
    """Jacobi sweeps of Laplace's equation over the pixels not `held`."""
    free = ~held[..., None]
    for _ in range(sweeps):
        p = np.pad(field, [(1, 1), (1, 1), (0, 0)], mode="edge")
        average = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4
        field = np.where(free, average, field)
    return field


def membrane(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A smooth field through samples: `values` (H,W,C) held where `weights` (H,W) is 1, and in between close to
    the solution of Laplace's equation (a membrane stretched over the samples). Push-pull over an image pyramid,
    with Jacobi sweeps at every level on the way back down, so each level only refines the coarser one."""
    height, width = weights.shape
    levels = max(0, int(np.ceil(np.log2(max(height, width) / 4))))
    side_h, side_w = -(-height // 2**levels) * 2**levels, -(-width // 2**levels) * 2**levels
    # Padded evenly on both sides: a block's value sits at its centre, so one-sided padding would shift the field.
    top, left = (side_h - height) // 2, (side_w - width) // 2
    pads = [(top, side_h - height - top), (left, side_w - width - left)]
    premultiplied = np.pad(values * weights[..., None], pads + [(0, 0)])
    weight = np.pad(weights.astype(np.float32), pads)
    pyramid = [(premultiplied, weight)]
    for _ in range(levels):
        half_h, half_w = weight.shape[0] // 2, weight.shape[1] // 2
        premultiplied = premultiplied.reshape(half_h, 2, half_w, 2, -1).sum(axis=(1, 3))
        weight = weight.reshape(half_h, 2, half_w, 2).sum(axis=(1, 3))
        clamp = np.where(weight > 1, 1 / np.maximum(weight, 1e-12), 1).astype(np.float32)
        premultiplied, weight = premultiplied * clamp[..., None], weight * clamp
        pyramid.append((premultiplied, weight))
    total = max(float(weight.sum()), 1e-12)
    filled = np.broadcast_to(premultiplied.sum(axis=(0, 1)) / total, premultiplied.shape)
    for premultiplied, weight in reversed(pyramid):
        coarse = filled if filled.shape == premultiplied.shape else _upsample_linear(filled, weight.shape)
        filled = premultiplied + (1 - weight)[..., None] * coarse
        if weight.size <= RELAX_MAX_PIXELS:
            filled = _relax(filled, weight >= 1, RELAX_SWEEPS)
    return filled[top:top + height, left:left + width].astype(np.float32)


def _edge(inside: np.ndarray) -> np.ndarray:
    """Pixels of `inside` with a 4-neighbour outside it (the crop's border does not count as outside)."""
    p = np.pad(inside, 1, mode="edge")
    return inside & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])


def _slope(mean: np.ndarray, count: np.ndarray, step: int) -> np.ndarray:
    """How steeply a local-mean field changes (largest channel, 0-255 per pixel): the largest change towards the
    four pixels `step` away where the field is defined (`count` > 0)."""
    padded, counted = np.pad(mean, [(step, step), (step, step), (0, 0)], mode="edge"), np.pad(count, step)
    height, width = count.shape
    steepest = np.zeros((height, width), np.float32)
    for dy, dx in ((-step, 0), (step, 0), (0, -step), (0, step)):
        rows, cols = slice(step + dy, step + dy + height), slice(step + dx, step + dx + width)
        change = np.abs(padded[rows, cols] - mean).max(axis=-1) / step
        steepest = np.maximum(steepest, np.where(counted[rows, cols] > 0, change, 0))
    return steepest


def _near_a_border(image: np.ndarray, where: np.ndarray, band_px: int) -> np.ndarray:
    """Pixels within a band of where the tone of `image` over `where` changes faster than `HARMONY_MAX_SLOPE`
    (measured on local means `SLOPE_BANDS` bands wide, so that grain does not count)."""
    reach = SLOPE_BANDS * band_px
    mean, count = _local_mean(image, where, reach)
    steep = (_slope(mean, count, reach) > HARMONY_MAX_SLOPE) & (count > 0)
    return _box_sum(steep.astype(np.float32), band_px) > 0


def _edge_offset(fill: np.ndarray, known: np.ndarray, region: np.ndarray, band_px: int) -> np.ndarray | None:
    """The smooth offset that takes `fill` to `known` across the edge of `region`, or None where no edge sample
    describes a tone."""
    known_mean, known_count = _local_mean(known, ~region, band_px)
    fill_mean, fill_count = _local_mean(fill, region, band_px)
    difference = (known_mean - fill_mean).astype(np.float32)
    smooth = ((_local_spread(known, ~region, band_px, known_mean) <= HARMONY_MAX_SPREAD)
              & (_local_spread(fill, region, band_px, fill_mean) <= HARMONY_MAX_SPREAD))
    smooth &= ~(_near_a_border(known, ~region, band_px) | _near_a_border(fill, region, band_px))
    samples = (_edge(region) & (known_count > 0) & (fill_count > 0) & smooth
               & (np.abs(difference).max(axis=-1) <= HARMONY_MAX_OFFSET))
    difference[~samples] = 0
    # The samples that disagree with the others along their stretch of the edge go, ever more strictly: the
    # consensus is taken again over the samples kept each time, so a few far off cannot drag it along.
    weights = samples
    for tolerance in HARMONY_TOLERANCES:
        if not weights.any():
            break
        local, _ = _local_mean(difference * weights[..., None], weights, HARMONY_CONSENSUS_BANDS * band_px)
        weights &= np.abs(difference - local).max(axis=-1) <= tolerance
    weights = weights.astype(np.float32)
    if not weights.any():
        return None
    return membrane(difference, weights)


def _reduce(image: np.ndarray, where: np.ndarray, factor: int) -> np.ndarray:
    """Mean of `image` over the pixels of `where` in each factor x factor block (0 where a block has none)."""
    height, width = where.shape
    blocks_h, blocks_w = -(-height // factor), -(-width // factor)
    pads = [(0, blocks_h * factor - height), (0, blocks_w * factor - width)]
    weight = np.pad(where.astype(np.float32), pads).reshape(blocks_h, factor, blocks_w, factor)
    values = np.pad(image * where[..., None], pads + [(0, 0)]).reshape(blocks_h, factor, blocks_w, factor, -1)
    count = weight.sum(axis=(1, 3))
    return values.sum(axis=(1, 3)) / np.maximum(count, 1.0)[..., None]


def harmonise(fill: np.ndarray, known: np.ndarray, inside: np.ndarray, band_px: int) -> np.ndarray:
    """`fill` (H,W,3) float32 shifted by a smooth offset inside `inside` so that it continues `known` (H,W,3)
    float32, the picture, across the mask's edge; pixels outside `inside` are returned unchanged.

    `band_px`: how far on each side of the edge the local means reach (two of the model's pixels, in the
    picture's); consensus along the edge is taken over sixteen times that. Where a model pixel covers several of
    the picture's, the offset is found at the model's resolution (the fill has no finer detail to go by) and
    scaled up, so that a large box costs about what a small one does."""
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
    factor = max(1, band_px // 2)
    if factor == 1:
        offset = _edge_offset(fill_crop, known_crop, region, band_px)
    else:
        small_region = _reduce(region[..., None].astype(np.float32), np.ones_like(region), factor)[..., 0] >= 0.5
        offset = _edge_offset(_reduce(fill_crop, region, factor), _reduce(known_crop, ~region, factor),
                              small_region, 2)
        if offset is not None:
            offset = _upsample_linear(offset, region.shape, factor)
    if offset is None:
        return fill
    out = fill.copy()
    out[top:bottom, left:right] = np.where(region[..., None], fill_crop + offset, fill_crop)
    return out
