"""Sketch to image (SDEdit): the picture with the user's strokes is noised to `strength` and denoised
under the caption inside the mask only; strength 1 is plain inpainting."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from glide_studio.pipelines import editbox
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.inpaint import paste_into_picture, upsampler_input
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.plans import base_stage, upsample_stage, wants_upsample
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.stages import check_request, drive, noise_for
from glide_studio.pipelines.state import RunState


def composite_sketch(image: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """The strokes (RGBA, straight alpha) laid over the image, uint8."""
    alpha = sketch[..., 3:4].astype(np.float32) / 255.0
    blended = image.astype(np.float32) * (1 - alpha) + sketch[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    """The region to regenerate is `request.mask`, or where the sketch has strokes when no mask is given."""
    check_request(request)
    if request.image is None or request.sketch is None:
        raise PipelineError("sketch to image needs a picture and a sketch layer")
    sketch = np.asarray(request.sketch)
    if sketch.ndim != 3 or sketch.shape[2] != 4:
        raise PipelineError(f"the sketch must be an HxWx4 RGBA layer, got shape {sketch.shape}")
    if not 0.0 < request.strength <= 1.0:
        raise PipelineError(f"strength must be in (0, 1], got {request.strength}")
    mask = editbox.region_to_regenerate(request)
    noise = noise_for(request, resume)
    boxed = editbox.prepare(request.image, mask, sketch, request.edit_box, models.base_size,
                            require_mask=True)
    start = composite_sketch(boxed.image, boxed.sketch)
    stages = [base_stage(models, request, noise, known=boxed, start_image=start)]
    if wants_upsample(models, request):
        boxed = upsampler_input(models, request, mask)
        stages.append(upsample_stage(models, request, noise, known=boxed))
    return drive(stages, paste_into_picture(request, boxed, mask), mode=request.mode, resume=resume)
