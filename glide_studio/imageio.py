"""Loading pictures, masks and sketch layers from files, with clear errors for anything unreadable.

``load_image(path, keep_alpha=False)`` -> uint8 HxWx3 RGB (transparent pixels flattened on white), or
HxWx4 RGBA with ``keep_alpha=True``; EXIF orientation applied; 16-bit and float images scaled to 8 bit.
``load_mask(path, size=None)`` -> bool HxW, True = regenerate.
``load_sketch(path)`` -> uint8 HxWx4 RGBA (alpha marks strokes).
Everything that goes wrong raises ``ImageLoadError`` naming the file and the reason.
"""

from __future__ import annotations

import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 20000 * 20000
"""Largest picture we agree to decode (1.2 GB as RGB); beyond that a file is more likely a bomb."""

_OPEN_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """A file could not be read as a picture."""


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory, not an image file")
    try:
        # Pillow's own bomb guard is global and stricter than ours; we apply our limit after reading the
        # header, before any pixel is decoded.
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                picture = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except OSError as error:
        raise ImageLoadError(f"{path}: cannot be read ({error})") from error
    width, height = picture.size
    if width * height > max_pixels:
        picture.close()
        raise ImageLoadError(
            f"{path}: the image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
            f"limit of {max_pixels / 1e6:.0f} megapixels; it may be a decompression bomb, or too large "
            "to edit: scale it down first"
        )
    if width == 0 or height == 0:
        picture.close()
        raise ImageLoadError(f"{path}: the image has no pixels ({width}x{height})")
    return picture


def _decode(path: Path, max_pixels: int) -> Image.Image:
    picture = _open_checked(path, max_pixels)
    try:
        with picture:
            picture.load()
            return ImageOps.exif_transpose(picture)
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason:
            reason = "the file is truncated (incomplete download or copy?)"
        raise ImageLoadError(f"{path}: the image data is broken: {reason}") from error
    except MemoryError as error:
        raise ImageLoadError(f"{path}: not enough memory to decode a {picture.size} image") from error


def _high_depth_to_8bit(picture: Image.Image) -> Image.Image:
    """Pillow clips 16-bit and float images when converting to 8 bit; scale them instead."""
    values = np.asarray(picture)
    if picture.mode == "F":
        top = 1.0 if float(np.nanmax(values)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values / top * 255.0)
    else:
        top = 65535.0 if int(values.max()) > 255 else 255.0
        scaled = values.astype(np.float64) / top * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _to_rgba_or_rgb(picture: Image.Image) -> Image.Image:
    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        picture = _high_depth_to_8bit(picture)
    has_alpha = picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        picture.mode in ("P", "L", "RGB") and "transparency" in picture.info
    )
    return picture.convert("RGBA" if has_alpha else "RGB")


def load_image(
    path: str | Path,
    keep_alpha: bool = False,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The picture as uint8 HxWx3 (alpha flattened on ``background``), or HxWx4 with ``keep_alpha``."""
    path = Path(path)
    picture = _to_rgba_or_rgb(_decode(path, max_pixels))
    if keep_alpha:
        return np.asarray(picture.convert("RGBA")).copy()
    if picture.mode == "RGBA":
        backdrop = Image.new("RGBA", picture.size, (*background, 255))
        picture = Image.alpha_composite(backdrop, picture)
    return np.asarray(picture.convert("RGB")).copy()


def load_sketch(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A sketch layer as uint8 HxWx4 RGBA; a file without alpha counts as painted everywhere."""
    return load_image(path, keep_alpha=True, max_pixels=max_pixels)


def load_mask(
    path: str | Path, size: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """A mask as bool HxW, True where the picture is to be regenerated.

    A mask with transparency is its alpha (painted = opaque); otherwise its brightness (white = painted).
    Values 0/1 count as a mask too. ``size`` (width, height) is the picture's: a mask of another size
    with the same aspect is resized (nearest); a different aspect is an error.
    """
    path = Path(path)
    picture = _to_rgba_or_rgb(_decode(path, max_pixels))
    if picture.mode == "RGBA" and picture.getextrema()[3][0] < 255:
        values = np.asarray(picture.getchannel("A"))
    else:
        values = np.asarray(picture.convert("L"))
    threshold = 0 if int(values.max()) <= 1 else 127
    mask = values > threshold
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
