"""Tiny reference networks as a ModelSet, and small inputs, for the pipeline tests."""

from __future__ import annotations

import json

import numpy as np

from glide_studio.models import build_clip_image_encoder, build_clip_text_encoder, build_model, load_weights
from glide_studio.pipelines.models import ModelSet

BASE_SIZE = 16
UPSAMPLE_SIZE = 64  # the tiny upsamplers' 6 levels need sides divisible by 32


def load(reference_dir, name, builder=build_model):
    options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
    module = builder(options)
    load_weights(module, reference_dir / f"{name}.pt")
    return module.eval()


def tiny_model_set(reference_dir, base="tiny-base-inpaint", upsample="tiny-upsample-inpaint", clip=False):
    return ModelSet(
        base=load(reference_dir, base),
        upsample=load(reference_dir, upsample) if upsample else None,
        clip_image=load(reference_dir, "tiny-clip-image-enc", build_clip_image_encoder) if clip else None,
        clip_text=load(reference_dir, "tiny-clip-text-enc", build_clip_text_encoder) if clip else None,
        base_size=BASE_SIZE,
        upsample_size=UPSAMPLE_SIZE if upsample else None,
    )


def request_for(mode, **changes):
    """A small request of each mode with its inputs (pictures of the upsampler's size), `changes` applied."""
    from glide_studio.pipelines.request import Mode, Request

    side = UPSAMPLE_SIZE
    inputs = {
        Mode.GENERATE: {},
        Mode.INPAINT: dict(image=picture(side, side), mask=rect_mask(side, side, 10, 20, 50, 44)),
        Mode.SDEDIT: dict(image=picture(side, side), sketch=strokes(side, side, 16, 16, 40, 40),
                          mask=rect_mask(side, side, 8, 8, 48, 48)),
        Mode.UPSAMPLE: dict(image=picture(BASE_SIZE, BASE_SIZE)),
    }[mode]
    fields = dict(mode=mode, prompt="a red circle above a blue square", steps=4, upsample_steps=3, seed=7,
                  batch=2, strength=0.75, **inputs)
    fields.update(changes)
    return Request(**fields)


def picture(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def rect_mask(width, height, x0, y0, x1, y1):
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def strokes(width, height, x0, y0, x1, y1, colour=(220, 30, 30)):
    layer = np.zeros((height, width, 4), dtype=np.uint8)
    layer[y0:y1, x0:x1] = (*colour, 255)
    return layer


def tiny_engine(models):
    """The app's PipelineEngine running the real pipelines on `models` (no checkpoint loading)."""
    from glide_studio.app.engine import PipelineEngine

    class TinyEngine(PipelineEngine):
        def load_models(self, request, device) -> None:
            self._model_set = models

    return TinyEngine()
