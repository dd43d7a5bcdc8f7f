"""The picture being edited and the layers painted over it (mask, sketch), plus the edit box."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QColor, QImage, QUndoStack

from glide_studio.app.images import array_to_qimage, qimage_to_array
from glide_studio.pipelines.request import EditBox

LAYER_FORMAT = QImage.Format.Format_ARGB32_Premultiplied
MASK_COLOUR = QColor(255, 64, 96)
LOCK_COLOUR = QColor(70, 220, 120)
LAYERS = ("mask", "sketch", "lock")
"""The paint layers: what to regenerate, colour strokes, and (while paused) prediction pixels to keep."""


def default_edit_box(width: int, height: int) -> EditBox:
    """The largest centred square: on a square picture, the whole picture."""
    side = min(width, height)
    return EditBox((width - side) // 2, (height - side) // 2, side, side)


def clamp_edit_box(box: EditBox, width: int, height: int, minimum: int = 16) -> EditBox:
    w = max(min(box.width, width), min(minimum, width))
    h = max(min(box.height, height), min(minimum, height))
    x = min(max(box.x, 0), width - w)
    y = min(max(box.y, 0), height - h)
    return EditBox(int(x), int(y), int(w), int(h))


def blank_layer(width: int, height: int) -> QImage:
    layer = QImage(width, height, LAYER_FORMAT)
    layer.fill(0)
    return layer


class Document(QObject):
    """Holds the picture as an RGB array and the paint layers as QImages the canvas paints on directly."""

    picture_changed = Signal()
    layers_changed = Signal()
    edit_box_changed = Signal()
    layer_committed = Signal(str, object, object)
    """(layer name, the QRect it changed, what happened: a dict such as {"what": "Mask stroke", "size": 24}):
    one finished user action on a layer (a stroke at mouse-up, a clear, an undo), for the journal."""

    def __init__(self, picture: np.ndarray, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._picture = np.zeros((1, 1, 3), np.uint8)
        self.mask = blank_layer(1, 1)
        self._mask_read: tuple[int, np.ndarray, bool] | None = None
        self.sketch = blank_layer(1, 1)
        self.lock = blank_layer(1, 1)
        self._edit_box = EditBox(0, 0, 1, 1)
        self._box_automatic = True
        self.undo_stack = QUndoStack(self)
        """Strokes, layer edits and accepted candidates, for Ctrl+Z."""
        self.reset(picture)

    @property
    def picture(self) -> np.ndarray:
        return self._picture

    @property
    def width(self) -> int:
        return int(self._picture.shape[1])

    @property
    def height(self) -> int:
        return int(self._picture.shape[0])

    def reset(self, picture: np.ndarray) -> None:
        """A new picture: empty layers, an automatic edit box."""
        self._picture = _checked_picture(picture)
        self.mask = blank_layer(self.width, self.height)
        self.sketch = blank_layer(self.width, self.height)
        self.lock = blank_layer(self.width, self.height)
        self._edit_box = default_edit_box(self.width, self.height)
        self._box_automatic = True
        self.picture_changed.emit()
        self.layers_changed.emit()
        self.edit_box_changed.emit()

    def set_picture(self, picture: np.ndarray) -> None:
        """Same size: keeps layers and box. Another size: like reset()."""
        picture = _checked_picture(picture)
        if picture.shape != self._picture.shape:
            self.reset(picture)
            return
        self._picture = picture
        self.picture_changed.emit()

    def picture_qimage(self) -> QImage:
        return array_to_qimage(self._picture)

    # --- mask -------------------------------------------------------------------------------------
    def mask_array(self) -> np.ndarray:
        """HxW uint8, 255 where the user painted (alpha at least half), else 0."""
        return self._read_mask()[0].copy()

    def _read_mask(self) -> tuple[np.ndarray, bool]:
        """The mask as an array and whether any pixel is painted, read once per change of the layer
        (QImage.cacheKey changes with every change): a run's start asked three times, 4 ms each at 1024 px."""
        key = self.mask.cacheKey()
        if self._mask_read is None or self._mask_read[0] != key:
            alpha = qimage_to_array(self.mask, 4)[..., 3]
            painted = np.where(alpha >= 128, 255, 0).astype(np.uint8)
            self._mask_read = (key, painted, bool(painted.any()))
        return self._mask_read[1], self._mask_read[2]

    def set_mask_array(self, mask: np.ndarray, what: str = "Set mask") -> None:
        painted = np.asarray(mask) > 0
        rgba = np.zeros((self.height, self.width, 4), np.uint8)
        rgba[painted] = (MASK_COLOUR.red(), MASK_COLOUR.green(), MASK_COLOUR.blue(), 255)
        self.mask = array_to_qimage(rgba).convertToFormat(LAYER_FORMAT)
        self.commit_layer("mask", None, {"what": what})

    def has_mask(self) -> bool:
        return self._read_mask()[1]

    def invert_mask(self) -> None:
        self.set_mask_array(self.mask_array() == 0, "Invert mask")

    def clear_mask(self) -> None:
        self.mask.fill(0)
        self.commit_layer("mask", None, {"what": "Clear mask"})

    # --- lock (pixels of a paused run's prediction to keep from now on) ----------------------------
    def lock_array(self) -> np.ndarray:
        """HxW bool: where the user locked the prediction."""
        return qimage_to_array(self.lock, 4)[..., 3] >= 128

    def clear_lock(self) -> None:
        self.lock.fill(0)
        self.commit_layer("lock", None, {"what": "Clear lock"})

    # --- sketch -----------------------------------------------------------------------------------
    def sketch_array(self) -> np.ndarray:
        return qimage_to_array(self.sketch, 4)

    def set_sketch_array(self, rgba: np.ndarray) -> None:
        self.sketch = array_to_qimage(rgba).convertToFormat(LAYER_FORMAT)
        self.commit_layer("sketch", None, {"what": "Set sketch"})

    def clear_sketch(self) -> None:
        self.sketch.fill(0)
        self.commit_layer("sketch", None, {"what": "Clear sketch"})

    def sketch_over_picture(self) -> np.ndarray:
        """The picture with the sketch strokes composited on it, as SDEdit sees it."""
        rgba = self.sketch_array().astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        mixed = self._picture.astype(np.float32) * (1 - alpha) + rgba[..., :3] * alpha
        return np.round(mixed).astype(np.uint8)

    def layer_changed(self, rect: QRect | None = None) -> None:
        """The canvas tells the document it painted on a layer."""
        self.layers_changed.emit()

    def commit_layer(self, name: str, rect: QRect | None, detail: dict) -> None:
        """A user action on layer `name` is complete; `rect` (None: the whole layer) bounds what it changed."""
        whole = QRect(0, 0, self.width, self.height)
        self.layers_changed.emit()
        self.layer_committed.emit(name, whole if rect is None else rect.intersected(whole), detail)

    def layer_patch(self, name: str, rect: QRect) -> bytes:
        """The layer's exact pixels (premultiplied ARGB32) inside `rect`, for the journal."""
        return bytes(_layer_pixels(getattr(self, name))[rect.top(): rect.bottom() + 1,
                                                         rect.left(): rect.right() + 1].tobytes())

    def apply_layer_patch(self, name: str, rect: QRect, data: bytes) -> None:
        """Puts back pixels that `layer_patch` took (replaying a journal)."""
        patch = np.frombuffer(data, np.uint8).reshape(rect.height(), rect.width(), 4)
        _layer_pixels(getattr(self, name))[rect.top(): rect.bottom() + 1, rect.left(): rect.right() + 1] = patch
        self.layers_changed.emit()

    # --- edit box ---------------------------------------------------------------------------------
    @property
    def edit_box(self) -> EditBox:
        """The box shown on the canvas: the user's, or where the automatic one went at the last run."""
        return self._edit_box

    @property
    def box_is_automatic(self) -> bool:
        """Until the user places the box, each run puts it around the painted region (editbox.with_default_box)."""
        return self._box_automatic

    def placed_edit_box(self) -> EditBox | None:
        """The box a run must use, or None to let the run choose it."""
        return None if self._box_automatic else self._edit_box

    def set_edit_box(self, box: EditBox | None, automatic: bool = False) -> None:
        """None (or automatic=True) hands the box back to the runs."""
        automatic = automatic or box is None
        box = clamp_edit_box(box or self._edit_box, self.width, self.height)
        if box != self._edit_box or automatic != self._box_automatic:
            self._edit_box, self._box_automatic = box, automatic
            self.edit_box_changed.emit()


def _layer_pixels(image: QImage) -> np.ndarray:
    """A writable (H, W, 4) view of a layer's own memory."""
    width, height = image.width(), image.height()
    rows = np.frombuffer(image.bits(), np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : width * 4].reshape(height, width, 4)


def _checked_picture(picture: np.ndarray) -> np.ndarray:
    array = np.asarray(picture)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1:
        raise ValueError(f"a picture is an HxWx3 uint8 array, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array).copy()
