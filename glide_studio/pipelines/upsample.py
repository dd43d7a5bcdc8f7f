"""Upsample: a picture (or its edit box), seen at the base size, re-drawn by the upsampler under a caption.

A picture the base model could have made (no larger than its size) comes back at the upsampler's size: that
is upscaling. On a larger picture the edit box is re-drawn where it is, at its own size, and every pixel
outside it stays as it was: upsampling a box never shrinks it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import upsample_stage
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for
from glide_studio.pipelines.state import RunState


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    """Results are (N, S, S, 3) at the upsampler's size for a small picture, else the picture with its box
    re-drawn."""
    check_request(request)
    if request.image is None:
        raise PipelineError("upsampling needs a picture")
    models.require_upsample()
    noise = noise_for(request, resume)
    low_size = models.upsample_size // 4 if models.base_size is None else models.base_size
    boxed = editbox.prepare(request.image, None, None, request.edit_box, low_size)
    low_res = np.repeat(boxed.image[None], request.batch, axis=0)
    stages = [upsample_stage(models, request, noise, low_res=low_res)]
    if max(request.image.shape[:2]) <= low_size:
        return drive(stages, lambda results: results, mode=request.mode, resume=resume)

    def in_place(results: np.ndarray) -> np.ndarray:
        return np.stack([editbox.paste_back(request.image, result, boxed, None) for result in results])

    return drive(stages, in_place, mode=request.mode, resume=resume)
