"""Upsample: any picture (or its edit box), seen at the base size, -> the upsampler's size under a caption."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import upsample_stage
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for


def run(models: ModelSet, request: Request) -> Iterator[Step]:
    """Results are (N, S, S, 3) at the upsampler's size, whatever the input's size."""
    check_request(request)
    if request.image is None:
        raise PipelineError("upsampling needs a picture")
    models.require_upsample()
    noise = noise_for(request)
    low_size = models.upsample_size // 4 if models.base_size is None else models.base_size
    boxed = editbox.prepare(request.image, None, None, request.edit_box, low_size)
    low_res = np.repeat(boxed.image[None], request.batch, axis=0)
    return drive([upsample_stage(models, request, noise, low_res=low_res)], lambda results: results)
