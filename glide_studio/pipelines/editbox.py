"""The edit box: how a picture of any size and aspect meets a model that sees a small square.

The user places a box on the picture; the model sees that box, squared and resized to its own size
(64 or 256 px); the result is resized back and blended into the picture through the user's mask, so
that every pixel outside the mask or outside the box comes back bit-identical. Pure numpy + Pillow.

API (all sizes in picture pixels unless said otherwise; arrays are numpy, RGB uint8):

``default_box(picture_size, mask, model_size=256) -> EditBox``
    ``picture_size`` is ``(width, height)``. A square box around the mask's bounding box, with a margin
    of context, at least ``model_size`` wide when the picture allows, clipped to the picture (so it is
    not square only when the picture is too small in one direction). ``mask=None`` gives the whole
    picture. An all-zero mask raises ``EmptyMaskError``.

``with_default_box(request) -> Request``
    The one rule for where the box goes when the user has not placed it, shared by the editor and the
    command line: for inpaint and sketch to image, ``default_box`` around the painted region (the mask, or
    the strokes when there is no mask, grown by ``mask_grow``) at the size of the run's last stage; otherwise
    the whole picture.

``region_to_regenerate(request) -> mask``
    What an inpaint or sketch-to-image run regenerates: the mask (or the strokes) grown or shrunk by the
    request's ``mask_grow`` (``grow_mask``: an octagonal distance, only the mask's neighbourhood worked on).

``prepare(image, mask, sketch, box, model_size, require_mask=False, grow_model_px=0) -> BoxedInput``
    ``image`` HxWx3 uint8, ``mask`` HxW (nonzero = regenerate) or None, ``sketch`` HxWx4 RGBA uint8 or
    None, ``box`` an ``EditBox`` or None (the whole picture). The box is clipped to the picture
    (``BoxOutsidePictureError`` when nothing is left), expanded to a square around its centre (shifted
    to stay inside the picture; where the picture is too small the square is centred on the picture
    and the missing part is filled with edge pixels), cropped and resized to ``model_size``:
    ``BoxedInput.image`` (S,S,3) uint8 (Lanczos), ``.mask`` (S,S) bool (area coverage, any coverage
    counts: the model may regenerate a little more than painted, the paste back uses the exact mask) or
    None, ``.sketch`` (S,S,4) uint8 (alpha-aware resize) or None. Padding is 0 in mask and sketch.
    ``require_mask=True`` (inpaint) raises ``EmptyMaskError`` when no painted pixel lies in the box.
    ``grow_model_px`` grows the model-size mask by that many of its pixels (the upsampler's, so that the rim it
    draws along the edge of what it regenerates falls outside the user's mask).
    Only the crop is read: a 20000 px picture costs the box, not the picture.

``paste_back(picture, result, boxed, mask, feather_px=None, inplace=False, harmonise=False) -> picture``
    ``result`` a square (R,R,3) uint8 image covering ``boxed.square`` at any resolution (the 64 px base
    output or the 256 px upsampled one: the geometry does not depend on the model size). The part
    covering the user's box is resized to the box and blended with weight w: w = 0 wherever ``mask``
    is 0 and outside the box (those pixels are copied, not recomputed), w ramps smoothly from 0 to 1
    over ``feather_px`` pixels inside the mask (measured from the mask's edge and from box edges that
    are inside the picture), and w = 1 deeper in. ``feather_px=None`` is ``default_feather_px``: two of
    the result's pixels. ``mask=None`` means the whole box. ``harmonise=True`` first shifts the resized
    result inside the mask by a smooth offset so that it continues the picture's tone across the mask's edge
    (``seams.harmonise``; inpaint and sketch to image use it); pixels outside the mask are still copied. Returns
    a new array, or writes into ``picture`` when ``inplace=True``.

``feather_weights(inside, feather_px, open_edges) -> float32 array`` is the blend ramp on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from glide_studio.pipelines import seams
from glide_studio.pipelines.request import EditBox, Family, Mode, Request

FEATHER_RESULT_PX = 2
"""The default blend ramp is this many of the result's pixels deep (in picture pixels: 2 for a 256 px picture
and a 256 px result, 8 for a 1024 px box and a 256 px result). It hides resampling seams at the mask's edge;
the model already saw the known pixels, so a deeper ramp would only blend in what the user painted over
(an 8 px ramp half-faded every edge of a 20 px object on a 64 px picture). A tone step along a straight mask
edge, which the wider ramp used to smear out, is removed by harmonising (``paste_back(harmonise=True)``); the
user can still ask for a deeper ramp (``Request.mask_feather``)."""
SD_BOX_SIZE = 512
"""The least side of a default box for a Stable Diffusion model: the size SD 1.x/2.x inpainting models see."""
MASK_COVERAGE_THRESHOLD = 0
"""A model-size mask pixel is set when more than this share (out of 255) of it was painted."""


class EditBoxError(ValueError):
    """The edit box or its inputs cannot be used."""


class BoxOutsidePictureError(EditBoxError):
    pass


class EmptyMaskError(EditBoxError):
    pass


@dataclass(frozen=True)
class BoxedInput:
    """What the model sees of the picture, and where it came from.

    ``box`` is the user's box clipped to the picture; ``square`` the square region (side >= box sides)
    the model sees, in picture coordinates, possibly reaching outside the picture (filled with edge
    pixels there). ``picture_size`` is (width, height).
    """

    box: EditBox
    square: EditBox
    picture_size: tuple[int, int]
    model_size: int
    image: np.ndarray
    mask: np.ndarray | None
    sketch: np.ndarray | None

    @property
    def scale(self) -> float:
        """Model pixels per picture pixel."""
        return self.model_size / self.square.width


def _check_picture(image: np.ndarray) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise EditBoxError(f"the picture must be an HxWx3 RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise EditBoxError(f"the picture must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise EditBoxError("the picture is empty (0 pixels)")
    return image.shape[1], image.shape[0]


def _check_layer(name: str, layer: np.ndarray | None, size: tuple[int, int], channels: int | None) -> None:
    if layer is None:
        return
    width, height = size
    expected = (height, width) if channels is None else (height, width, channels)
    if not isinstance(layer, np.ndarray) or layer.shape != expected:
        shape = getattr(layer, "shape", type(layer).__name__)
        raise EditBoxError(f"the {name} must have shape {expected} to match the picture, got {shape}")


def clip_box(box: EditBox | None, picture_size: tuple[int, int]) -> EditBox:
    """The part of ``box`` inside the picture; the whole picture for None."""
    width, height = picture_size
    if box is None:
        return EditBox(0, 0, width, height)
    if box.width <= 0 or box.height <= 0:
        raise EditBoxError(f"the edit box must have a positive size, got {box.width}x{box.height}")
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.width, width), min(box.y + box.height, height)
    if x1 <= x0 or y1 <= y0:
        raise BoxOutsidePictureError(
            f"the edit box (x={box.x}, y={box.y}, {box.width}x{box.height}) lies outside the "
            f"{width}x{height} picture"
        )
    return EditBox(x0, y0, x1 - x0, y1 - y0)


def _place_square_axis(start: int, length: int, side: int, extent: int) -> int:
    if side <= extent:
        centred = round(start + length / 2 - side / 2)
        return min(max(centred, 0), extent - side)
    # Cannot fit: centre on the picture, which still contains the (clipped) box.
    return (extent - side) // 2


def square_around(box: EditBox, picture_size: tuple[int, int]) -> EditBox:
    """The square the model sees for a (clipped) box."""
    width, height = picture_size
    side = max(box.width, box.height)
    x = _place_square_axis(box.x, box.width, side, width)
    y = _place_square_axis(box.y, box.height, side, height)
    return EditBox(x, y, side, side)


def default_box(
    picture_size: tuple[int, int],
    mask: np.ndarray | None,
    model_size: int = 256,
    margin_fraction: float = 0.25,
    min_margin_px: int = 16,
) -> EditBox:
    width, height = picture_size
    if mask is None:
        return EditBox(0, 0, width, height)
    _check_layer("mask", mask, picture_size, None)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise EmptyMaskError("the mask is empty: paint the region to change first")
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    extent = max(x1 - x0, y1 - y0)
    margin = max(min_margin_px, round(extent * margin_fraction))
    side = max(extent + 2 * margin, model_size)
    side_x, side_y = min(side, width), min(side, height)
    x = _place_square_axis(x0, x1 - x0, side_x, width)
    y = _place_square_axis(y0, y1 - y0, side_y, height)
    return EditBox(x, y, side_x, side_y)


def region_to_regenerate(request: Request) -> np.ndarray | None:
    """The pixels an inpaint or sketch-to-image run regenerates: the mask (or, without one, the sketch's strokes)
    grown or shrunk by ``request.mask_grow``; the mask itself when that is 0. None when nothing is painted."""
    painted = request.mask
    if painted is None and request.sketch is not None:
        painted = np.asarray(request.sketch)[..., 3] > 0
    if painted is None or request.mask_grow == 0:
        return painted
    grown = grow_mask(painted, request.mask_grow)
    if not grown.any() and np.any(painted):
        raise EmptyMaskError(f"shrinking the mask by {-request.mask_grow} px leaves nothing to regenerate: "
                             "grow it less")
    return grown


def with_default_box(request: Request) -> Request:
    if request.edit_box is not None or request.image is None or request.mode not in (Mode.INPAINT, Mode.SDEDIT):
        return request
    painted = region_to_regenerate(request)
    if painted is None:
        return request
    height, width = request.image.shape[:2]
    model_size = SD_BOX_SIZE if request.family is Family.SD else 256 if request.upsample_model else 64
    extent = np.asarray(painted) != 0
    if request.family is Family.SD and request.regions:  # GLIGEN's boxes must lie in what the model sees
        extent = extent.copy()
        for region in request.regions:
            extent[max(region.y0, 0):max(region.y1, 0), max(region.x0, 0):max(region.x1, 0)] = True
    return request.with_(edit_box=default_box((width, height), extent, model_size=model_size))


def _grow_once(region: np.ndarray, step: int, grow: bool) -> np.ndarray:
    """One step of an octagonal dilation (grow) or erosion: 4-neighbours, and on odd steps the diagonals too."""
    p = np.pad(region, 1, mode="constant", constant_values=not grow)
    combine = np.logical_or if grow else np.logical_and
    out = combine.reduce([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
    if step % 2 == 1:
        out = combine.reduce([out, p[:-2, :-2], p[:-2, 2:], p[2:, :-2], p[2:, 2:]])
    return out


def grow_mask(mask: np.ndarray | None, px: int) -> np.ndarray | None:
    """The painted region (nonzero) grown by `px` pixels, or shrunk by -`px` (an octagonal distance, as the blend
    ramp measures it), as a bool array; `px` = 0 gives the mask back as it was. Only the mask's bounding box (plus
    `px`) is worked on, so a small mask on a huge picture costs its own size."""
    if mask is None or px == 0:
        return mask
    painted = np.asarray(mask) != 0
    rows = np.flatnonzero(painted.any(axis=1))
    if rows.size == 0:
        return painted
    cols = np.flatnonzero(painted[rows[0]:rows[-1] + 1].any(axis=0))
    reach = max(px, 0) + 1
    y0, y1 = max(rows[0] - reach, 0), min(rows[-1] + 1 + reach, painted.shape[0])
    x0, x1 = max(cols[0] - reach, 0), min(cols[-1] + 1 + reach, painted.shape[1])
    region = painted[y0:y1, x0:x1]
    for step in range(abs(px)):
        region = _grow_once(region, step, px > 0)
    out = np.zeros_like(painted)
    out[y0:y1, x0:x1] = region
    return out


_BAND_BLOCKS = 32


def _block_reduce(crop: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Mean ("mean"), max ("max") or alpha-weighted mean ("premultiplied", RGBA) over factor x factor
    blocks, one band of rows at a time: a huge crop is shrunk before Pillow ever copies it."""
    height, width = crop.shape[:2]
    out_h, out_w = -(-height // factor), -(-width // factor)
    channels = crop.shape[2:]
    out = np.empty((out_h, out_w, *channels), dtype=np.uint8)
    band_rows = factor * _BAND_BLOCKS
    for start in range(0, height, band_rows):
        band = crop[start : start + band_rows]
        blocks_down = -(-band.shape[0] // factor)
        pad = [(0, blocks_down * factor - band.shape[0]), (0, out_w * factor - width)]
        band = np.pad(band, pad + [(0, 0)] * len(channels), mode="edge")
        blocks = band.reshape(blocks_down, factor, out_w, factor, *channels)
        # Reducing one axis at a time is many times faster than numpy's multi-axis reductions here.
        if how == "max":
            reduced = blocks.max(axis=1).max(axis=2)
        elif how == "premultiplied":
            alpha = blocks[..., 3:].astype(np.uint64)
            weighted = (blocks[..., :3] * alpha).sum(axis=1).sum(axis=2)
            alpha_sum = alpha.sum(axis=1).sum(axis=2)
            colour = weighted / np.maximum(alpha_sum, 1)
            reduced = np.concatenate([colour, alpha_sum / factor**2], axis=-1)
        else:
            reduced = blocks.sum(axis=1, dtype=np.uint32).sum(axis=2, dtype=np.uint32) / factor**2
        first = start // factor
        out[first : first + blocks_down] = np.clip(np.rint(reduced), 0, 255)
    return out


def _resize_region(
    crop: np.ndarray,
    model_size: int,
    pads: tuple[int, int, int, int],
    scale: float,
    resample,
    fill,
    reduce_how: str = "mean",
) -> np.ndarray:
    """Resize ``crop`` (the square minus its padding) into a model_size square, then pad."""
    left, top, right, bottom = pads
    m_left, m_top = round(left * scale), round(top * scale)
    m_right, m_bottom = round(right * scale), round(bottom * scale)
    inner_w = max(model_size - m_left - m_right, 1)
    inner_h = max(model_size - m_top - m_bottom, 1)
    crop_h, crop_w = crop.shape[:2]
    # The source rectangle exactly matching the inner model pixels, kept inside the crop.
    src = (
        min(max(m_left / scale - left, 0.0), crop_w - 1e-3),
        min(max(m_top / scale - top, 0.0), crop_h - 1e-3),
        min(max((m_left + inner_w) / scale - left, 1e-3), crop_w),
        min(max((m_top + inner_h) / scale - top, 1e-3), crop_h),
    )
    # Far larger than the output: shrink by whole blocks first, leaving 2x for the final filter.
    factor = int(min((src[2] - src[0]) / inner_w, (src[3] - src[1]) / inner_h) // 2)
    if factor >= 2:
        crop = _block_reduce(crop, factor, reduce_how)
        src = tuple(value / factor for value in src)
    picture = Image.fromarray(np.ascontiguousarray(crop))
    gap = 3.0 if resample == Image.Resampling.LANCZOS else None
    inner = np.asarray(picture.resize((inner_w, inner_h), resample, box=src, reducing_gap=gap))
    pad = [(m_top, model_size - m_top - inner_h), (m_left, model_size - m_left - inner_w)]
    pad += [(0, 0)] * (inner.ndim - 2)
    if fill == "edge":
        return np.pad(inner, pad, mode="edge")
    return np.pad(inner, pad, mode="constant", constant_values=fill)


def prepare(
    image: np.ndarray,
    mask: np.ndarray | None,
    sketch: np.ndarray | None,
    box: EditBox | None,
    model_size: int,
    require_mask: bool = False,
    grow_model_px: int = 0,
) -> BoxedInput:
    picture_size = _check_picture(image)
    _check_layer("mask", mask, picture_size, None)
    _check_layer("sketch", sketch, picture_size, 4)
    if model_size <= 0:
        raise EditBoxError(f"the model size must be positive, got {model_size}")
    clipped = clip_box(box, picture_size)
    if require_mask:
        region = None if mask is None else _box_slice(mask, clipped)
        if region is None or not region.any():
            raise EmptyMaskError(
                "the mask is empty inside the edit box: paint the region to regenerate "
                f"(box x={clipped.x}, y={clipped.y}, {clipped.width}x{clipped.height})"
            )
    square = square_around(clipped, picture_size)
    width, height = picture_size
    x0, y0 = max(square.x, 0), max(square.y, 0)
    x1, y1 = min(square.x + square.width, width), min(square.y + square.height, height)
    pads = (x0 - square.x, y0 - square.y, square.x + square.width - x1, square.y + square.height - y1)
    scale = model_size / square.width
    lanczos = Image.Resampling.LANCZOS

    boxed_image = _resize_region(image[y0:y1, x0:x1], model_size, pads, scale, lanczos, "edge")
    boxed_mask = None
    if mask is not None:
        painted = (mask[y0:y1, x0:x1] != 0).astype(np.uint8) * 255
        coverage = _resize_region(painted, model_size, pads, scale, Image.Resampling.BOX, 0, "max")
        boxed_mask = grow_mask(coverage > MASK_COVERAGE_THRESHOLD, grow_model_px)
    boxed_sketch = None
    if sketch is not None:
        crop = np.ascontiguousarray(sketch[y0:y1, x0:x1])
        boxed_sketch = _resize_region(crop, model_size, pads, scale, lanczos, 0, "premultiplied")
    return BoxedInput(clipped, square, picture_size, model_size, boxed_image, boxed_mask, boxed_sketch)


def _box_slice(array: np.ndarray, box: EditBox) -> np.ndarray:
    return array[box.y : box.y + box.height, box.x : box.x + box.width]


def feather_weights(inside: np.ndarray, feather_px: int, open_edges: tuple[bool, bool, bool, bool]):
    """Blend weights in [0, 1]: 0 outside ``inside``, ramping to 1 at ``feather_px`` px deep.

    ``open_edges`` (left, top, right, bottom) marks sides where the region continues (the picture's
    own border), which do not count as an edge. Depth alternates 4- and 8-neighbour erosions, an
    octagonal distance that looks round enough and needs no scipy.
    """
    inside = np.asarray(inside, dtype=bool)
    if feather_px <= 0:
        return inside.astype(np.float32)
    left, top, right, bottom = open_edges
    border = ((top, bottom), (left, right))
    depth = inside.astype(np.float32)
    current = inside
    for step in range(feather_px):
        if not current.any():
            break
        p = np.pad(current, 1, mode="constant", constant_values=border)
        eroded = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        if step % 2 == 1:
            eroded &= p[:-2, :-2] & p[:-2, 2:] & p[2:, :-2] & p[2:, 2:]
        current = eroded
        depth += current
    ramp = depth / np.float32(feather_px + 1)
    return (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)


def default_feather_px(boxed: BoxedInput, result_size: int) -> int:
    """`FEATHER_RESULT_PX` pixels of a `result_size` result, in picture pixels (at least 1)."""
    return max(1, -(-FEATHER_RESULT_PX * boxed.square.width // result_size))  # ceil, in whole numbers


def paste_back(
    picture: np.ndarray,
    result: np.ndarray,
    boxed: BoxedInput,
    mask: np.ndarray | None,
    feather_px: int | None = None,
    inplace: bool = False,
    harmonise: bool = False,
) -> np.ndarray:
    picture_size = _check_picture(picture)
    if picture_size != boxed.picture_size:
        raise EditBoxError(
            f"the picture is {picture_size[0]}x{picture_size[1]} but the edit box was prepared for "
            f"{boxed.picture_size[0]}x{boxed.picture_size[1]}"
        )
    _check_layer("mask", mask, picture_size, None)
    if (
        not isinstance(result, np.ndarray)
        or result.dtype != np.uint8
        or result.ndim != 3
        or result.shape[2] != 3
        or result.shape[0] != result.shape[1]
    ):
        shape = getattr(result, "shape", None)
        raise EditBoxError(f"the model result must be a square RxRx3 uint8 image, got {shape}")
    box, square = boxed.box, boxed.square
    automatic_feather_px = default_feather_px(boxed, result.shape[0])
    if feather_px is None:
        feather_px = automatic_feather_px
    k = result.shape[0] / square.width
    src = (
        (box.x - square.x) * k,
        (box.y - square.y) * k,
        (box.x + box.width - square.x) * k,
        (box.y + box.height - square.y) * k,
    )
    resized = Image.fromarray(result).resize((box.width, box.height), Image.Resampling.LANCZOS, box=src)
    pasted = np.asarray(resized)

    width, height = picture_size
    if mask is None:
        inside = np.ones((box.height, box.width), dtype=bool)
    else:
        inside = _box_slice(mask, box) != 0
    open_edges = (box.x == 0, box.y == 0, box.x + box.width == width, box.y + box.height == height)
    weight = feather_weights(inside, feather_px, open_edges)[..., None]

    out = picture if inplace else picture.copy()
    region = _box_slice(out, box)
    original = region.astype(np.float32)
    fill = pasted.astype(np.float32)
    if harmonise:
        fill = seams.harmonise(fill, original, inside, automatic_feather_px)
    blended = np.rint(original + weight * (fill - original))
    # Copy, never recompute, where the weight is 0: those pixels must stay bit for bit.
    region[...] = np.where(weight > 0, np.clip(blended, 0, 255), original).astype(np.uint8)
    return out
