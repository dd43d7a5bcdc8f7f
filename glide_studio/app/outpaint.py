"""Outpainting: the canvas grows by some pixels on each side, and the new area is filled one edit box at a time.

`extend_picture` grows the picture (old pixels bit-identical, the new area a neutral fill) and marks the new
area; `plan_boxes` lays edit boxes over the new area so that each one sees enough of the old picture (or of
boxes filled before it) to continue it; `Outpainter` drives a `StudioController`: it makes the extended picture
a history node, sets the new area as the mask, runs one inpaint job per box through the controller's runner
(the GUI thread never waits on the model), pastes each result into a working picture and adds the filled
picture to the gallery as one run, which the user accepts like any candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from glide_studio.app.errors import StudioError
from glide_studio.app.history import HistoryNode
from glide_studio.app.images import MAX_SIDE
from glide_studio.app.run_settings import RunSettings, choose_seed, run_request
from glide_studio.app.worker import Job, JobResult, Paused, Progress
from glide_studio.pipelines.editbox import EditBoxError
from glide_studio.pipelines.request import MAX_SEED, EditBox, Mode, Request

if TYPE_CHECKING:
    from glide_studio.app.controller import StudioController

CONTEXT_SHARE = 0.25
"""Each box should see at least this share of its pixels already known (old picture or earlier boxes)."""
MAX_EXTEND = 2048
"""The most pixels the dialog offers per side (the picture's largest side, MAX_SIDE, is the real limit)."""


# --- growing the picture ---------------------------------------------------------------------------------

def _check_sides(picture: np.ndarray, sides: Sequence[int]) -> tuple[int, int, int, int]:
    values = []
    for name, value in zip(("left", "top", "right", "bottom"), sides, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise StudioError(f"The {name} extension must be a whole number of pixels, got {value!r}.")
        if value < 0:
            raise StudioError(f"The {name} extension cannot be negative ({value} px): the canvas only grows.")
        values.append(int(value))
    left, top, right, bottom = values
    height, width = picture.shape[:2]
    new_width, new_height = width + left + right, height + top + bottom
    if new_width > MAX_SIDE or new_height > MAX_SIDE:
        raise StudioError(f"The extended picture would be {new_width}x{new_height}; the largest side allowed is "
                          f"{MAX_SIDE} px.")
    return left, top, right, bottom


def extend_picture(picture: np.ndarray, left: int, top: int, right: int, bottom: int,
                   fill: str | int | tuple[int, int, int] = "edge") -> tuple[np.ndarray, np.ndarray]:
    """The picture grown by the given pixels on each side, and an HxW uint8 mask (255) of the new area.

    The old pixels land bit-identical at (left, top). The new area starts as a neutral fill: "edge" repeats
    the nearest border pixel (softened along the border so single pixels do not become stripes), "mean" is the
    picture's mean colour, a number or an RGB triple is that colour.
    """
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8 or min(picture.shape[:2]) < 1:
        raise StudioError(f"A picture is an HxWx3 uint8 array, got {picture.dtype} {picture.shape}.")
    left, top, right, bottom = _check_sides(picture, (left, top, right, bottom))
    height, width = picture.shape[:2]
    pads = ((top, bottom), (left, right), (0, 0))
    if fill == "edge":
        grown = np.pad(_softened_border(picture), pads, mode="edge")
    elif fill == "mean":
        colour = np.rint(picture.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
        grown = np.empty((height + top + bottom, width + left + right, 3), np.uint8)
        grown[...] = colour
    elif isinstance(fill, str):
        raise StudioError(f"Unknown fill {fill!r}: use 'edge', 'mean', or a colour.")
    else:
        grown = np.empty((height + top + bottom, width + left + right, 3), np.uint8)
        grown[...] = np.clip(np.asarray(fill), 0, 255).astype(np.uint8)
    grown[top: top + height, left: left + width] = picture  # the old pixels, exactly
    new_area = np.full(grown.shape[:2], 255, np.uint8)
    new_area[top: top + height, left: left + width] = 0
    return np.ascontiguousarray(grown), new_area


def _softened_border(picture: np.ndarray, radius: int = 2) -> np.ndarray:
    """The picture with its outermost row and column replaced by a blur along the border (only those are
    repeated into the new area; the copy's inside is overwritten with the original afterwards)."""
    out = picture.copy()
    height, width = picture.shape[:2]

    def blur(line: np.ndarray) -> np.ndarray:
        padded = np.pad(line.astype(np.float32), ((radius, radius), (0, 0)), mode="edge")
        kernel = np.ones(2 * radius + 1, np.float32) / (2 * radius + 1)
        smooth = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(3)], axis=1)
        return np.clip(np.rint(smooth), 0, 255).astype(np.uint8)

    out[0, :] = blur(picture[0, :])
    out[height - 1, :] = blur(picture[height - 1, :])
    out[:, 0] = blur(picture[:, 0])
    out[:, width - 1] = blur(picture[:, width - 1])
    return out


# --- where the boxes go ----------------------------------------------------------------------------------

def seam_px(side: int) -> int:
    """How deep a box's filling is redone by a later box along the box's edges inside the picture: the paste
    back ramps its blend up over a few pixels there, so those pixels are still mostly the neutral fill."""
    return max(2, -(-side // 16))


def settled_region(box: EditBox, picture_size: tuple[int, int], seam: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of `box` whose new pixels count as finished once the box is filled: the box
    less `seam` pixels along each edge that lies inside the picture (edges on the picture's border keep all)."""
    width, height = picture_size
    x0 = box.x + (seam if box.x > 0 else 0)
    y0 = box.y + (seam if box.y > 0 else 0)
    x1 = box.x + box.width - (seam if box.x + box.width < width else 0)
    y1 = box.y + box.height - (seam if box.y + box.height < height else 0)
    return x0, y0, max(x0, x1), max(y0, y1)


def _positions(extent: int, length: int, stride: int) -> np.ndarray:
    return np.unique(np.concatenate([np.arange(0, extent - length + 1, stride), [extent - length]]))


def _rect_sums(table: np.ndarray, x0, y0, x1, y1) -> np.ndarray:
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _integral(array: np.ndarray) -> np.ndarray:
    table = np.zeros((array.shape[0] + 1, array.shape[1] + 1), np.int32)  # MAX_SIDE**2 < 2**31
    np.cumsum(np.cumsum(array, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    return table


def plan_boxes(picture_size: tuple[int, int], new_area: np.ndarray, side: int,
               seam: int | None = None, context_share: float = CONTEXT_SHARE) -> list[EditBox]:
    """Edit boxes (squares of `side` px, clipped to the picture) that together cover every new pixel.

    `picture_size` is (width, height), `new_area` HxW (nonzero: to fill). Greedy: each next box is the one that
    finishes the most new pixels among those at least `context_share` known (old pixels, or pixels finished by
    earlier boxes), so the list is in an order where every box continues what is already there. A new pixel
    within `seam` px (default `seam_px(side)`) of a box edge inside the picture counts as finished only when a
    later box, which blends over it, cannot be found: see `settled_region`. When no box has enough context (a
    tiny picture grown a lot), the one with the most context goes next.
    """
    width, height = (int(value) for value in picture_size)
    todo = np.asarray(new_area) != 0
    if todo.shape != (height, width):
        raise StudioError(f"The new area is {todo.shape[1]}x{todo.shape[0]} but the picture is {width}x{height}.")
    if side < 8:
        raise StudioError(f"An edit box must be at least 8 px wide, got {side}.")
    box_w, box_h = min(side, width), min(side, height)
    seam = seam_px(side) if seam is None else int(seam)
    if 2 * seam >= min(box_w, box_h):
        seam = 0
    stride = max(1, side // 8)
    xs = _positions(width, box_w, stride)[None, :]
    ys = _positions(height, box_h, stride)[:, None]
    # Each candidate's settled part (its box less the seams along edges inside the picture).
    sx0 = xs + np.where(xs > 0, seam, 0)
    sy0 = ys + np.where(ys > 0, seam, 0)
    sx1 = xs + box_w - np.where(xs + box_w < width, seam, 0)
    sy1 = ys + box_h - np.where(ys + box_h < height, seam, 0)
    area = box_w * box_h
    need = context_share * area
    # Each candidate's unfinished pixels: in its settled part (gain) and in its whole box (context is the rest).
    # Counted once over the picture, then only the rectangle each chosen box finishes is subtracted.
    table = _integral(todo)
    gain = _rect_sums(table, sx0, sy0, sx1, sy1).astype(np.int64)  # scores below multiply by the area
    unknown = _rect_sums(table, xs, ys, xs + box_w, ys + box_h).astype(np.int64)
    del table
    remaining = int(todo.sum())
    boxes: list[EditBox] = []
    while remaining > 0:
        context = area - unknown
        full_box = not (gain > 0).any()  # seams wider than the stride: settle whole boxes
        wins = unknown if full_box else gain
        usable = (wins > 0) & (context >= need)
        if usable.any():
            score = np.where(usable, wins * (area + 1) + context, -1)
        else:  # nothing sees enough yet: the most context first, then the most gain
            score = np.where(wins > 0, context * (area + 1) + wins, -1)
        row, column = np.unravel_index(int(np.argmax(score)), score.shape)
        box = EditBox(int(xs[0, column]), int(ys[row, 0]), box_w, box_h)
        x0, y0, x1, y1 = settled_region(box, (width, height), 0 if full_box else seam)
        local = _integral(todo[y0:y1, x0:x1])

        def cleared(ax0, ay0, ax1, ay1, x0=x0, y0=y0, x1=x1, y1=y1, local=local):
            """Unfinished pixels of the settled rectangle inside each candidate rectangle (a, clipped)."""
            cx0, cx1 = np.clip(ax0, x0, x1) - x0, np.clip(ax1, x0, x1) - x0
            cy0, cy1 = np.clip(ay0, y0, y1) - y0, np.clip(ay1, y0, y1) - y0
            return _rect_sums(local, cx0, cy0, np.maximum(cx0, cx1), np.maximum(cy0, cy1))

        gain = gain - cleared(sx0, sy0, sx1, sy1)
        unknown = unknown - cleared(xs, ys, xs + box_w, ys + box_h)
        remaining -= int(local[-1, -1])
        todo[y0:y1, x0:x1] = False
        boxes.append(box)
    return boxes


# --- driving the controller ------------------------------------------------------------------------------

class Outpainter(QObject):
    """Extends the controller's picture and fills the new area, one inpaint job per planned box.

    Signals: progress(done boxes, total boxes), emitted as each box starts and once more at the end; step (the
    runner's Progress of a box's job: the controller answers only its own jobs, so the window's progress bar
    and preview listen here); finished (the filled picture is in the gallery); failed(message); cancelled (the
    document stays as it was after extending, nothing joins the gallery). Everything happens in slots of the
    runner's signals: the GUI thread never waits on the model.
    """

    progress = Signal(int, int)
    step = Signal(object)
    finished = Signal()
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, controller: StudioController, side: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.side = side
        """The boxes' side in picture pixels; None: the run's result size (256 with upsampling, else 64)."""
        self.boxes: list[EditBox] = []
        self.working: np.ndarray | None = None
        """The extended picture with the boxes filled so far."""
        self.unfilled: np.ndarray | None = None
        """HxW bool: new pixels no box has finished yet."""
        self.node_id: int | None = None
        """The history node of the extended picture."""
        self._job: Job | None = None
        self._done = 0
        self._seed = 0
        self._seam = 0
        self._settings: RunSettings | None = None
        self._last: JobResult | None = None
        runner = controller.runner
        runner.job_step.connect(self._on_step)
        runner.job_finished.connect(self._on_finished)
        runner.job_failed.connect(self._on_failed)
        runner.job_cancelled.connect(self._on_cancelled)
        runner.job_paused.connect(self._on_paused)

    @property
    def running(self) -> bool:
        return self._job is not None

    @property
    def boxes_done(self) -> int:
        return self._done

    # -- starting -----------------------------------------------------------------------------------------
    def start(self, left: int, top: int, right: int, bottom: int) -> list[EditBox]:
        """Extends the picture (a new history node, "Extend canvas"), sets the new area as the mask and starts
        filling it under the current caption and settings (as inpainting, one candidate). Returns the planned
        boxes. Raises StudioError, changing nothing, for sizes it refuses or while a run is going or paused."""
        controller = self.controller
        if self.running:
            raise StudioError("Outpainting is already running.")
        if controller.busy or controller.paused is not None:
            raise StudioError("Wait for the current run to end (or cancel it) before extending the canvas.")
        extended, new_area = extend_picture(controller.document.picture, left, top, right, bottom)
        if not new_area.any():
            raise StudioError("Nothing to extend: give at least one side some pixels.")
        settings = controller.run_settings.with_models(mode=Mode.INPAINT).with_request(batch=1)
        side = self.side or (256 if settings.request.upsample_model else 64)
        height, width = extended.shape[:2]
        self._seam = seam_px(side) if 2 * seam_px(side) < min(side, width, height) else 0
        self.boxes = plan_boxes((width, height), new_area, side, self._seam)
        self._settings = settings
        self._seed = choose_seed(controller.run_settings)
        self.node_id = self._extend_document(extended, new_area, (left, top, right, bottom))
        self.working = extended.copy()
        self.unfilled = new_area != 0
        self._done, self._last = 0, None
        self._submit_next()
        return list(self.boxes)

    def _extend_document(self, extended: np.ndarray, new_area: np.ndarray, sides) -> int:
        """The extended picture as a history node under the current one (going back to its parent brings the
        old picture back), journalled so that a recovery rebuilds it; the new area becomes the mask."""
        controller = self.controller
        history = controller.history
        controller.discard_candidates()
        node = HistoryNode(max(known.id for known in history.nodes()) + 1, history.current.id, extended,
                           "Extend canvas")
        controller.restore_history([*history.nodes(), node], node.id)  # journalled: the tree with the new node
        controller.go_to_node(node.id, what="Extend canvas")  # journalled: the picture on the document
        left, top, right, bottom = sides
        controller.document.set_mask_array(new_area, f"Outpaint area (+{left} {top} {right} {bottom} px)")
        return node.id

    def _request(self, box: EditBox) -> Request:
        mask = np.zeros(self.unfilled.shape, np.uint8)
        region = (slice(box.y, box.y + box.height), slice(box.x, box.x + box.width))
        mask[region] = np.where(self.unfilled[region], 255, 0)
        seed = (self._seed + self._done) % (MAX_SEED + 1)
        try:
            return run_request(self._settings, self.working.copy(), mask, None, box, seed)
        except EditBoxError as error:
            raise StudioError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from error

    def _submit_next(self) -> None:
        box = self.boxes[self._done]
        request = self._request(box)
        self.controller.document.set_edit_box(box, automatic=True)  # the box's previews land where it works
        self._job = Job(request, self._settings.device, self.controller.preview_source)
        self.progress.emit(self._done, len(self.boxes))
        self.controller.runner.submit(self._job)

    # -- the runner's signals -------------------------------------------------------------------------------
    def _ours(self, job_id: int) -> bool:
        return self._job is not None and self._job.id == job_id

    def _on_step(self, progress: Progress) -> None:
        if self._ours(progress.job_id):
            self.step.emit(progress)

    def _on_finished(self, result: JobResult) -> None:
        if not self._ours(result.job_id):
            return
        box = self.boxes[self._done]
        mask = np.asarray(result.request.mask) != 0
        filled = result.images[0]
        self.working[mask] = filled[mask]  # only the box's unfilled pixels: everything else stays bit for bit
        x0, y0, x1, y1 = settled_region(box, (self.working.shape[1], self.working.shape[0]), self._seam)
        settled = np.zeros_like(mask)
        settled[y0:y1, x0:x1] = True
        self.unfilled &= ~(mask & settled)
        self._done += 1
        self._last = result
        if result.warning:
            self.controller.status.emit(result.warning)
        if self._done < len(self.boxes):
            try:
                self._submit_next()
            except StudioError as error:
                self._job = None
                self.failed.emit(str(error))
            return
        self._job = None
        self.progress.emit(self._done, len(self.boxes))
        # One run in the gallery, journalled like any: the filled picture, with the last box's record (a
        # repeatable step whose input, everything filled before it, is kept by digest like any run's input).
        self.controller.keep_result(replace(result, images=self.working[None].copy(), encoded=()))
        self.finished.emit()

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._ours(job_id):
            self._job = None
            self.failed.emit(message)

    def _on_cancelled(self, job_id: int) -> None:
        if self._ours(job_id):
            self._job = None
            self.cancelled.emit()

    def _on_paused(self, paused: Paused) -> None:
        if self._ours(paused.job_id):  # outpainting does not pause: it stops as if cancelled
            self._job = None
            self.cancelled.emit()

    def cancel(self) -> None:
        """Stops after the current step of the current box; the document stays as it was after extending."""
        if self._job is not None:
            self._job.cancel()
