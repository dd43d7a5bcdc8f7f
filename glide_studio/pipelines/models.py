"""The networks a pipeline runs, already built, loaded, on their device and in eval mode.

Loading from files is the checkpoints layer's job; a `ModelSet` only holds what it produced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from glide_studio.models.precision import Precision, prepare_model
from glide_studio.pipelines.errors import PipelineError


@dataclass
class ModelSet:
    """base: a GLIDE text->image or inpaint UNet (64 px); upsample: a super-res (inpaint) UNet or None;
    clip_image / clip_text: the noised CLIP encoders for CLIP guidance, or None.

    base_size / upsample_size: the resolutions each stage runs at, by default the models' own
    `config.image_size`; smaller sizes work with these fully convolutional networks (tests use them).

    precision: how the networks run (see glide_studio.models.precision); by default plain fp32 on `device`.
    Use `ModelSet.prepared` to move and convert the networks for a chosen precision in one go.
    """

    base: torch.nn.Module | None
    upsample: torch.nn.Module | None = None
    clip_image: torch.nn.Module | None = None
    clip_text: torch.nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    base_size: int | None = None
    upsample_size: int | None = None
    clip_logit_scale: float = math.log(100.0)
    clip_image_size: int = 64
    precision: Precision | None = None

    @classmethod
    def prepared(cls, precision: Precision, base: torch.nn.Module | None, upsample: torch.nn.Module | None = None,
                 clip_image: torch.nn.Module | None = None, clip_text: torch.nn.Module | None = None,
                 **sizes) -> ModelSet:
        """The networks moved to the precision's device in eval mode, UNets given fp16/bf16 weights where chosen
        (in place: see prepare_model)."""
        networks = {name: None if module is None else prepare_model(module, precision)
                    for name, module in (("base", base), ("upsample", upsample), ("clip_image", clip_image),
                                         ("clip_text", clip_text))}
        if clip_image is not None:  # the scale the encoders were trained with (100 for OpenAI's)
            sizes.setdefault("clip_logit_scale", math.log(float(clip_image.config.logit_scale)))
        return cls(**networks, device=precision.device, precision=precision, **sizes)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.precision is None:
            self.precision = Precision(self.device)
        elif self.precision.device != self.device:
            raise PipelineError(f"the precision is for {self.precision.device} but the models are on {self.device}")
        for name in ("base", "upsample", "clip_image", "clip_text"):
            module = getattr(self, name)
            if module is not None and module.training:
                module.eval()
        if self.base_size is None and self.base is not None:
            self.base_size = int(self.base.config.image_size)
        if self.upsample_size is None and self.upsample is not None:
            self.upsample_size = int(self.upsample.config.image_size)

    def require_base(self) -> torch.nn.Module:
        if self.base is None:
            raise PipelineError("no base model is loaded")
        return self.base

    def require_upsample(self) -> torch.nn.Module:
        if self.upsample is None:
            raise PipelineError("no upsampler model is loaded")
        if not self.upsample.config.super_res:
            raise PipelineError("the upsampler model is not a super-resolution model")
        return self.upsample

    @property
    def has_clip(self) -> bool:
        return self.clip_image is not None and self.clip_text is not None
