"""Generate: caption -> base image -> upsampled image (the whole canvas, or the edit box of a picture)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import base_stage, upsample_stage, wants_upsample
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for


def run(models: ModelSet, request: Request) -> Iterator[Step]:
    """Without a picture the results are model-sized; with one, they fill its edit box (or all of it)."""
    check_request(request)
    noise = noise_for(request)
    stages = [base_stage(models, request, noise)]
    size = models.base_size
    if wants_upsample(models, request):
        stages.append(upsample_stage(models, request, noise))
        size = models.upsample_size
    boxed = None
    if request.image is not None:
        boxed = editbox.prepare(request.image, None, None, request.edit_box, size)

    def final(results: np.ndarray) -> np.ndarray:
        if boxed is None:
            return results
        return np.stack([editbox.paste_back(request.image, result, boxed, None) for result in results])

    return drive(stages, final)
