"""Pictures made from a run's step previews, on the worker thread: a paused run's candidates as pictures (its
gallery entry), and the upsampler's preview laid over the base result it refines."""

from __future__ import annotations

import numpy as np
from PIL import Image

from glide_studio.pipelines import editbox
from glide_studio.pipelines.request import Mode, Request


def paused_pictures(request: Request, preview: np.ndarray) -> np.ndarray:
    """Each candidate's preview (N, s, s, 3) put into the picture where the run would put its result (the edit
    box, inside the mask or strokes grown by `mask_grow`), as the run's final step would; the bare previews for a
    run on no picture."""
    preview = np.ascontiguousarray(preview, dtype=np.uint8)
    if request.image is None or request.mode == Mode.UPSAMPLE:
        return preview
    try:
        region = editbox.region_to_regenerate(request)  # grown as the run grows it, so the preview shows its fill
        if region is not None:
            region = (np.asarray(region) != 0).astype(np.uint8)
        boxed = editbox.prepare(request.image, region, None, request.edit_box, preview.shape[1])
        return np.stack([editbox.paste_back(request.image, square, boxed, region) for square in preview])
    except editbox.EditBoxError:
        return preview


def over_base(prediction: np.ndarray, base: np.ndarray, weight: float) -> np.ndarray:
    """The upsampler's prediction (N, S, S, 3) laid over the base stage's result (N, s, s, 3), scaled up to it,
    with `weight` (0: only the base result, 1: only the prediction): while the upsampler's x is still mostly
    noise the preview shows the picture it is refining, never noise, and ends exactly on its prediction."""
    weight = float(min(1.0, max(0.0, weight)))
    if weight >= 1.0 or base is None or len(base) != len(prediction):
        return prediction
    height, width = prediction.shape[1:3]
    scaled = np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))
                       for image in np.asarray(base, dtype=np.uint8)])
    blended = scaled.astype(np.float32) * (1 - weight) + prediction.astype(np.float32) * weight
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
