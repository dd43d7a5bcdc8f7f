"""Pictures in: files and clipboard data; numpy <-> QImage; thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from glide_studio import imageio
from glide_studio.app.errors import ImageLoadError

OPEN_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"
MAX_SIDE = 8192
"""The largest side the canvas takes (the picture limit in pixels is imageio's, for GUI and CLI alike)."""


def load_image(path: str | Path) -> np.ndarray:
    """Any common picture file as an HxWx3 uint8 RGB array (the one loader the command line uses too: EXIF
    orientation, 16-bit scaled, the decompression-bomb limit), or ImageLoadError with a message to show."""
    try:
        return imageio.load_image(path, max_side=MAX_SIDE)
    except imageio.ImageLoadError as error:
        raise ImageLoadError(str(error)) from error


def load_image_bytes(data: bytes, source: str = "the pasted data") -> np.ndarray:
    try:
        return imageio.load_image_data(data, source, max_side=MAX_SIDE)
    except imageio.ImageLoadError as error:
        raise ImageLoadError(str(error)) from error


def difference_heatmap(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where two pictures of one size differ, and how much: black where every channel is equal, then dark red
    to yellow to white as the largest channel difference grows (a 1-level change already shows)."""
    difference = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2)
    level = np.where(difference > 0, 64 + difference * 191 // 255, 0).astype(np.int32)
    red = np.minimum(level * 3, 255)
    green = np.clip(level * 3 - 255, 0, 255)
    blue = np.clip(level * 3 - 510, 0, 255)
    return np.dstack([red, green, blue]).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    """Lossless and quick to write (level 1): for pictures kept exactly, not small (the journal)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def array_to_qimage(array: np.ndarray) -> QImage:
    """An owning QImage copy of an HxWx3 or HxWx4 uint8 array (RGB / RGBA)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape[:2]
    if array.ndim == 2:
        qformat, stride = QImage.Format.Format_Grayscale8, width
    elif array.shape[2] == 3:
        qformat, stride = QImage.Format.Format_RGB888, width * 3
    else:
        qformat, stride = QImage.Format.Format_RGBA8888, width * 4
    return QImage(array.data, width, height, stride, qformat).copy()


def qimage_to_array(image: QImage, channels: int = 3) -> np.ndarray:
    """HxWxC uint8 (C = 3 RGB, 4 straight-alpha RGBA) copy of a QImage."""
    if channels == 3:
        converted = image.convertToFormat(QImage.Format.Format_RGB888)
    else:
        converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = converted.width(), converted.height()
    stride = converted.bytesPerLine()
    buffer = np.frombuffer(converted.constBits(), dtype=np.uint8, count=stride * height)
    return buffer.reshape(height, stride)[:, : width * channels].reshape(height, width, channels).copy()


def thumbnail(array: np.ndarray, side: int = 96) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB"))
