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
    """The results blended into the picture through `mask`: their tone harmonised with the pixels around the mask,
    faded in over the request's feather (at least the automatic ramp), nothing outside the mask touched."""
    def final(results: np.ndarray) -> np.ndarray:
        feather = max(editbox.default_feather_px(boxed, results.shape[1]), request.mask_feather)
        return np.stack([editbox.paste_back(request.image, result, boxed, mask, feather_px=feather, harmonise=True)
                         for result in results])

    return final


def upsampler_input(models: ModelSet, request: Request, mask: np.ndarray, sketch=None) -> editbox.BoxedInput:
    """The edit box at the upsampler's size, its mask grown by one of the base model's pixels: the upsampler draws
    a bright rim a few pixels wide along the edge of what it regenerates (mean error 4 against 1.3 deeper in), so
    the rim is moved to pixels the paste back leaves as they were."""
    grow = max(1, models.upsample_size // models.base_size)
    return editbox.prepare(request.image, mask, sketch, request.edit_box, models.upsample_size, require_mask=True,
                           grow_model_px=grow)


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    check_request(request)
    if request.image is None or request.mask is None:
        raise PipelineError("inpainting needs a picture and a mask of the region to regenerate")
    noise = noise_for(request, resume)
    mask = editbox.region_to_regenerate(request)
    boxed = editbox.prepare(request.image, mask, None, request.edit_box, models.base_size, require_mask=True)
    stages = [base_stage(models, request, noise, known=boxed)]
    if wants_upsample(models, request):
        boxed = upsampler_input(models, request, mask)
        stages.append(upsample_stage(models, request, noise, known=boxed))
    return drive(stages, paste_into_picture(request, boxed, mask), mode=request.mode, resume=resume)
