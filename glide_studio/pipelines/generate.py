"""Generate: caption -> base image -> upsampled image (the whole canvas, or the edit box of a picture)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import base_stage, upsample_stage, wants_upsample
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for
from glide_studio.pipelines.state import RunState


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    """Without a picture the results are model-sized; with one, they fill its edit box (or all of it)."""
    check_request(request)
    noise = noise_for(request, resume)
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

    return drive(stages, final, mode=request.mode, resume=resume)
