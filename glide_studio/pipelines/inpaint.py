"""Inpaint: regenerate the painted region from the caption; every other pixel stays exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import base_stage, upsample_stage, wants_upsample
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for
from glide_studio.pipelines.state import RunState


def paste_into_picture(request: Request, boxed: editbox.BoxedInput, mask: np.ndarray):
    def final(results: np.ndarray) -> np.ndarray:
        return np.stack([editbox.paste_back(request.image, result, boxed, mask) for result in results])

    return final


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    check_request(request)
    if request.image is None or request.mask is None:
        raise PipelineError("inpainting needs a picture and a mask of the region to regenerate")
    noise = noise_for(request, resume)
    boxed = editbox.prepare(request.image, request.mask, None, request.edit_box, models.base_size,
                            require_mask=True)
    stages = [base_stage(models, request, noise, known=boxed)]
    if wants_upsample(models, request):
        boxed = editbox.prepare(request.image, request.mask, None, request.edit_box, models.upsample_size,
                                require_mask=True)
        stages.append(upsample_stage(models, request, noise, known=boxed))
    return drive(stages, paste_into_picture(request, boxed, request.mask), mode=request.mode, resume=resume)
