"""The shapes world's oracle: what object is in a region of an image, and does it match a caption?

It inverts the renderer: pixels are classified to the nearest palette colour, the background is the
dominant colour around the region, the object's colour is that of the largest blob of another colour inside
it, and its silhouette is every connected pixel at least half covered by that colour (the renderer's blend
`background * (1 - coverage) + colour * coverage`, solved for coverage), as `world.object_mask` defines it.
Its kind comes from scale-free geometry of the silhouette (compactness, solidity, fill of its bounding box).
Needs scipy (a dev/eval dependency, not the app's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .captions import parse_phrase
from .world import COLOURS, PALETTE

_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[name] for name in _NAMES], dtype=np.float32)
MAX_COLOUR_DISTANCE = 60.0  # farther than this from every palette colour: a blend, not a colour
MIN_AREA_AT_64 = 12  # pixels; a small object covers ~150 px at 64 px


@dataclass(frozen=True)
class Detection:
    colour: str
    kind: str
    mask: np.ndarray
    bbox: tuple[int, int, int, int]  # top, left, bottom, right (exclusive)
    centroid: tuple[float, float]  # (x, y) as fractions of the image side

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True)
class OracleResult:
    colour_ok: bool
    shape_ok: bool
    position_ok: bool | None
    detection: Detection | None


def classify_colours(image: np.ndarray) -> np.ndarray:
    """Index into the palette of each pixel's nearest colour, or -1 where none is near."""
    distances = np.sqrt(((image[:, :, None, :].astype(np.float32) - _RGB) ** 2).sum(-1))
    nearest = distances.argmin(-1)
    nearest[distances.min(-1) > MAX_COLOUR_DISTANCE] = -1
    return nearest


def _background_index(labels: np.ndarray, region: np.ndarray) -> int:
    from scipy import ndimage

    grow = max(2, region.shape[0] // 16)
    ring = ndimage.binary_dilation(region, iterations=grow) & ~region
    if not ring.any():  # the region is the whole image: take its most common colour
        ring = region
    values = labels[ring]
    values = values[values >= 0]
    return int(np.bincount(values, minlength=len(_NAMES)).argmax()) if values.size else -1


def _kind_from_blob(blob: np.ndarray) -> str:
    from scipy.spatial import ConvexHull, QhullError

    rows, cols = np.nonzero(blob)
    area = float(rows.size)
    cy, cx = rows.mean(), cols.mean()
    # Pixel centres sit half a pixel inside the true outline.
    r_max = float(np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2).max()) + 0.5
    compactness = area / (math.pi * r_max**2)
    corners = np.concatenate([np.stack([rows + dy, cols + dx], 1) for dy in (0, 1) for dx in (0, 1)])
    try:
        solidity = area / ConvexHull(corners).volume
    except QhullError:
        return "unknown"
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    fill = area / float(height * width)
    if solidity < 0.8:
        return "star"
    if compactness > 0.8:
        return "circle"
    if compactness < 0.52:
        return "triangle"
    return "square" if fill > 0.68 else "diamond"


def _half_covered(image: np.ndarray, region: np.ndarray, core: np.ndarray, colour: int, labels: np.ndarray,
                  background: int) -> np.ndarray:
    """The object's silhouette as the renderer defines it (coverage >= 0.5), grown from its core of pixels
    nearest its colour. Edge pixels blend the object's colour into the background's; nearest-colour alone
    drops a dark shape's grey tips on a light background, and those tips are what tell a star from a blob."""
    from scipy import ndimage

    if background < 0:
        return core
    local = image[region & (labels == background)].astype(np.float32)
    back = np.median(local, axis=0) if local.size else _RGB[background]
    towards = _RGB[colour] - back
    offset = image.astype(np.float32) - back
    coverage = (offset @ towards) / float(towards @ towards)
    off_line = np.linalg.norm(offset - coverage[..., None] * towards, axis=-1)
    blend = region & (coverage >= 0.5) & (off_line <= MAX_COLOUR_DISTANCE)
    components, _ = ndimage.label(blend | core)
    return np.isin(components, np.unique(components[core]))


SILHOUETTES = ("coverage", "nearest")


def detect(image: np.ndarray, region: np.ndarray, silhouette: str = "coverage") -> Detection | None:
    """The dominant object inside ``region`` (bool HxW), or None when only background is there.

    ``silhouette="nearest"`` keeps only the pixels nearest the object's colour (the rule before coverage was
    solved for; it shrinks high-contrast objects and cuts their tips), for comparing evaluations."""
    if silhouette not in SILHOUETTES:
        raise ValueError(f"unknown silhouette rule {silhouette!r}; expected one of {', '.join(SILHOUETTES)}")
    from scipy import ndimage

    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != region.shape:
        raise ValueError(f"image {image.shape} and region {region.shape} do not match")
    region = region.astype(bool)
    labels = classify_colours(image)
    background = _background_index(labels, region)
    candidates = region & (labels >= 0) & (labels != background)
    min_area = MIN_AREA_AT_64 * (image.shape[0] / 64) ** 2
    best, best_area, best_colour = None, 0, -1
    for index in np.unique(labels[candidates]):
        components, count = ndimage.label(candidates & (labels == index))
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        biggest = int(sizes.argmax())
        if sizes[biggest] > best_area:
            best, best_area, best_colour = components == biggest + 1, int(sizes[biggest]), int(index)
    if best is None or best_area < min_area or _NAMES[best_colour] not in COLOURS:
        return None
    if silhouette == "coverage":
        best = _half_covered(image, region, best, best_colour, labels, background)
    blob = ndimage.binary_fill_holes(best)
    rows, cols = np.nonzero(blob)
    side = image.shape[0]
    return Detection(
        colour=_NAMES[best_colour],
        kind=_kind_from_blob(blob),
        mask=blob,
        bbox=(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1),
        centroid=(float(cols.mean() + 0.5) / side, float(rows.mean() + 0.5) / side),
    )


_POSITION_TESTS = {
    "left": lambda x, y: x < 0.45,
    "right": lambda x, y: x > 0.55,
    "top": lambda x, y: y < 0.45,
    "bottom": lambda x, y: y > 0.55,
    "center": lambda x, y: abs(x - 0.5) < 0.2 and abs(y - 0.5) < 0.2,
    "top left": lambda x, y: x < 0.45 and y < 0.45,
    "top right": lambda x, y: x > 0.55 and y < 0.45,
    "bottom left": lambda x, y: x < 0.45 and y > 0.55,
    "bottom right": lambda x, y: x > 0.55 and y > 0.55,
}


def check(image: np.ndarray, region: np.ndarray, phrase: str) -> OracleResult:
    """Does the object in ``region`` match ``phrase`` (colour, kind and, when named, its place)?"""
    colour, kind, _, position = parse_phrase(phrase)  # raises ShapesError for text outside the grammar
    found = detect(image, region)
    if found is None:
        return OracleResult(False, False, False if position else None, None)
    where = _POSITION_TESTS[position](*found.centroid) if position else None
    return OracleResult(found.colour == colour, found.kind == kind, where, found)
