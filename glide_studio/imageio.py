"""Loading pictures, masks and sketch layers from files or bytes, with clear errors for anything unreadable.

The one loader of the GUI and the command line:
``load_image(path, keep_alpha=False)`` -> uint8 HxWx3 RGB (transparent pixels flattened on white), or
HxWx4 RGBA with ``keep_alpha=True``; EXIF orientation applied; 16-bit and float images scaled to 8 bit.
``load_image_data(data, source)``: the same from bytes (pasted data, a project's pictures).
``load_mask(path, size=None)`` -> bool HxW, True = regenerate.
``load_sketch(path)`` -> uint8 HxWx4 RGBA (alpha marks strokes).

Pillow's decompression-bomb guard stays on; every picture is also measured against `max_pixels()` (the
``GLIDE_STUDIO_MAX_MEGAPIXELS`` setting, Pillow's own limit by default) from its header, before any pixel is
decoded. Everything that goes wrong raises ``ImageLoadError`` naming the file and the reason.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS_ENV = "GLIDE_STUDIO_MAX_MEGAPIXELS"
"""Raises (or lowers) the largest picture accepted, in megapixels."""

DEFAULT_MAX_PIXELS = 89_478_485
"""Pillow's own decompression-bomb threshold (89.5 megapixels, 268 MB as RGB). Without one, a 218 KB PNG that
announces 15000x15000 pixels takes 3.4 GB to decode and convert."""

_OPEN_LOCK = threading.Lock()
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageLoadError(ValueError):
    """A file could not be read as a picture."""


def max_pixels() -> int:
    """The largest picture accepted, in pixels: ``$GLIDE_STUDIO_MAX_MEGAPIXELS`` when set, else Pillow's limit."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        megapixels = float(text)
    except ValueError:
        megapixels = math.nan
    if not math.isfinite(megapixels) or megapixels <= 0:
        raise ImageLoadError(f"{MAX_PIXELS_ENV} must be a positive number of megapixels, got {text!r}")
    return int(megapixels * 1e6)


def set_max_megapixels(megapixels: float | None) -> None:
    """Raise (or lower) the limit for this process and the runs it starts, as the environment variable does;
    None goes back to Pillow's limit. The editor's Edit ▸ Largest picture to open… calls this."""
    if megapixels is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
        return
    if not math.isfinite(megapixels) or megapixels <= 0:
        raise ImageLoadError(f"the largest picture must be a positive number of megapixels, got {megapixels!r}")
    os.environ[MAX_PIXELS_ENV] = f"{megapixels:g}"


def too_large_message(name: str, size: tuple[int, int] | int, limit: int) -> str:
    """`size`: (width, height), or only the pixel count where Pillow refused the file before we saw its header."""
    pixels = size[0] * size[1] if isinstance(size, tuple) else size
    shape = f"{size[0]}x{size[1]} ({pixels / 1e6:.1f} megapixels)" if isinstance(size, tuple) else (
        f"{pixels / 1e6:.1f} megapixels")
    return (f"{name}: the image is {shape}, over the limit of {limit / 1e6:.1f} megapixels; it may be a "
            f"decompression bomb, or too large to edit: scale it down first, or raise the limit with "
            f"{MAX_PIXELS_ENV} (or --max-megapixels on the command line) if you trust the file")


def _refused_by_pillow(name: str, error: Exception, limit: int) -> ImageLoadError:
    found = re.search(r"\((\d+) pixels\)", str(error))
    if found is None:
        return ImageLoadError(f"{name}: refused as a likely decompression bomb ({error})")
    return ImageLoadError(too_large_message(name, int(found.group(1)), limit))


def _keep_pillow_guard_above(limit: int) -> None:
    """Pillow refuses pictures over twice its MAX_IMAGE_PIXELS before we can say why: its guard is raised to our
    limit when a user raises ours, and turned back on if anything turned it off. It is never lowered."""
    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = max(limit, DEFAULT_MAX_PIXELS)


def _open_checked(source: Path | bytes, name: str, limit: int, max_side: int | None) -> Image.Image:
    if isinstance(source, Path):
        if not source.exists():
            raise ImageLoadError(f"{name}: the file does not exist")
        if source.is_dir():
            raise ImageLoadError(f"{name}: is a directory, not an image file")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; our own check below refuses with the size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            _keep_pillow_guard_above(limit)
            picture = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
    except Image.DecompressionBombError as error:  # over twice Pillow's limit: it refuses from the header
        raise _refused_by_pillow(name, error, limit) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or a format Pillow cannot read)") from None
    except OSError as error:
        raise ImageLoadError(f"{name}: cannot be read ({error})") from error
    width, height = picture.size
    if width * height > limit:
        picture.close()
        raise ImageLoadError(too_large_message(name, (width, height), limit))
    if max_side is not None and max(width, height) > max_side:
        picture.close()
        raise ImageLoadError(f"{name}: the image is {width}x{height}; the largest side the editor takes is "
                             f"{max_side} px: scale it down first")
    if width == 0 or height == 0:
        picture.close()
        raise ImageLoadError(f"{name}: the image has no pixels ({width}x{height})")
    return picture


def _decode(source: Path | bytes, name: str, limit: int | None, max_side: int | None = None) -> Image.Image:
    limit = max_pixels() if limit is None else limit
    picture = _open_checked(source, name, limit, max_side)
    try:
        with picture:
            picture.load()
            return ImageOps.exif_transpose(picture)
    except Image.DecompressionBombError as error:  # a frame or tile larger than the header said
        raise _refused_by_pillow(name, error, limit) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason:
            reason = "the file is truncated (incomplete download or copy?)"
        raise ImageLoadError(f"{name}: the image data is broken: {reason}") from error
    except MemoryError as error:
        width, height = picture.size
        raise ImageLoadError(f"{name}: not enough memory to decode a {width}x{height} image") from error


def _high_depth_to_8bit(picture: Image.Image) -> Image.Image:
    """Pillow clips 16-bit and float images when converting to 8 bit; scale them instead."""
    values = np.asarray(picture)
    if picture.mode == "F":
        top = 1.0 if float(np.nanmax(values)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values / top * 255.0)
    else:
        # A 16-bit mode always spans 0..65535 (a dark 16-bit picture is still 16-bit); a 32-bit "I" picture
        # says nothing of its range, so one that fits in 8 bits is taken as 8-bit.
        sixteen = picture.mode in _SIXTEEN_BIT_MODES or int(values.max()) > 255
        scaled = values.astype(np.float64) / (65535.0 if sixteen else 255.0) * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _to_rgba_or_rgb(picture: Image.Image) -> Image.Image:
    if picture.mode in ("I", "F", *_SIXTEEN_BIT_MODES):
        picture = _high_depth_to_8bit(picture)
    has_alpha = picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        picture.mode in ("P", "L", "RGB") and "transparency" in picture.info
    )
    return picture.convert("RGBA" if has_alpha else "RGB")


def _as_array(picture: Image.Image, keep_alpha: bool, background: tuple[int, int, int]) -> np.ndarray:
    picture = _to_rgba_or_rgb(picture)
    if keep_alpha:
        return np.asarray(picture.convert("RGBA")).copy()
    if picture.mode == "RGBA":
        backdrop = Image.new("RGBA", picture.size, (*background, 255))
        picture = Image.alpha_composite(backdrop, picture)
    return np.ascontiguousarray(np.asarray(picture.convert("RGB")))


def load_image(
    path: str | Path,
    keep_alpha: bool = False,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """The picture as uint8 HxWx3 (alpha flattened on ``background``), or HxWx4 with ``keep_alpha``.
    ``max_pixels`` (default `max_pixels()`) and ``max_side`` are checked from the header, before decoding."""
    path = Path(path)
    return _as_array(_decode(path, str(path), max_pixels, max_side), keep_alpha, background)


def load_image_data(
    data: bytes, source: str = "the pasted data", max_pixels: int | None = None, max_side: int | None = None
) -> np.ndarray:
    """`load_image` for a picture held in memory; ``source`` names it in errors."""
    return _as_array(_decode(bytes(data), source, max_pixels, max_side), False, (255, 255, 255))


def load_sketch(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """A sketch layer as uint8 HxWx4 RGBA; a file without alpha counts as painted everywhere."""
    return load_image(path, keep_alpha=True, max_pixels=max_pixels)


MASK_THRESHOLD = 127
"""Mask levels above this (50%) are painted: masks are hard, a soft edge comes from the blend, not the mask."""


def load_mask(
    path: str | Path, size: tuple[int, int] | None = None, max_pixels: int | None = None,
    on_note: Callable[[str], None] | None = None,
) -> np.ndarray:
    """A mask as bool HxW, True where the picture is to be regenerated.

    A mask with transparency is its alpha (painted = opaque); otherwise its brightness (white = painted).
    Values 0/1 count as a mask too. Grey (soft) levels are painted from 50% up: a soft mask that paints
    nothing at that threshold is refused, saying so, and ``on_note`` hears how a partly soft mask was read.
    ``size`` (width, height) is the picture's: a mask of another size with the same aspect is resized
    (nearest); a different aspect is an error.
    """
    path = Path(path)
    picture = _to_rgba_or_rgb(_decode(path, str(path), max_pixels))
    if picture.mode == "RGBA" and picture.getextrema()[3][0] < 255:
        values, what = np.asarray(picture.getchannel("A")), "most opaque"
    else:
        values, what = np.asarray(picture.convert("L")), "brightest"
    top = int(values.max())
    threshold = 0 if top <= 1 else MASK_THRESHOLD
    mask = values > threshold
    soft = (values > 1) & (values < 255)
    if not mask.any() and top > 0:
        raise ImageLoadError(
            f"{path}: the mask paints nothing: its {what} pixel is {top / 255:.0%} and only pixels of 50% or more "
            "count as painted (white or opaque = regenerate); a soft mask is not blended, make the region white")
    if on_note is not None and soft.any():
        share = float(soft.mean())
        on_note(f"{path}: {share:.0%} of the mask is grey (soft); pixels of 50% or more are regenerated, "
                f"the rest kept ({int(mask.sum())} pixels painted)")
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        width, height = size
        mask_w, mask_h = mask.shape[1], mask.shape[0]
        if abs(mask_w / mask_h - width / height) > 0.01 * (width / height):
            raise ImageLoadError(
                f"{path}: the mask is {mask_w}x{mask_h} but the picture is {width}x{height} "
                "(a different shape): the mask must cover the picture"
            )
        resized = Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)
        mask = np.asarray(resized).astype(bool)
    return mask
