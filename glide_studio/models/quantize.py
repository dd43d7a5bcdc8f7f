"""Dynamic int8 convolutions for the UNet body, on x86 CPUs with oneDNN (AVX-512 VNNI does int8 dot products at
twice bf16's rate).

Weights are quantized once, symmetrically per output channel; activations per call, per tensor, from their
absolute maximum (so no calibration and no stored activation ranges); oneDNN's int8 convolution returns the
result dequantized in the input's dtype. Only the body's 3x3 and 1x1 convolutions change: the stem, the output
head, attention and norms stay as they are. A quantized network is a copy: the loaded one keeps its weights.

Measured in benchmarks/bench_levers.py (--int8) and eval_levers.py; see the issue note for whether it pays.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

INT8_MAX = 127
ZERO_POINT = 128
"""Activations are unsigned (oneDNN's u8 x s8 kernels): 128 is 0.0, so a symmetric range fits."""


def int8_available() -> bool:
    """oneDNN's quantized convolution is in this build of torch (x86 CPU builds)."""
    ops = getattr(torch.ops, "onednn", None)
    try:
        return ops is not None and hasattr(ops, "qconv2d_pointwise") and hasattr(ops, "qconv_prepack")
    except RuntimeError:
        return False


class Int8Conv2d(nn.Module):
    """A Conv2d run as int8 x int8 -> input dtype, activations quantized per call."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        weight = conv.weight.detach().float()
        scale = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / INT8_MAX
        quantized = torch.round(weight / scale[:, None, None, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups = conv.groups
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(len(scale), dtype=torch.int64))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float())
        self.packed = torch.ops.onednn.qconv_prepack(quantized, scale, 1.0, 0, self.stride, self.padding,
                                                     self.dilation, self.groups, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = float(x.detach().abs().amax()) / INT8_MAX or 1.0
        qx = torch.round(x.float() / scale).add_(ZERO_POINT).clamp_(0, 255).to(torch.uint8)
        return torch.ops.onednn.qconv2d_pointwise(
            qx, scale, ZERO_POINT, self.packed, self.weight_scale, self.weight_zero_point, self.bias,
            self.stride, self.padding, self.dilation, self.groups, 1.0, 0, x.dtype, "none", [], "")


def _body_convs(model: nn.Module):
    """(parent, child name) of every Conv2d in the UNet body, the stem excluded."""
    stem = model.input_blocks[0][0]
    for part in (model.input_blocks, model.middle_block, model.output_blocks):
        for parent in part.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.Conv2d) and child is not stem:
                    yield parent, name


def quantize_convs(model: nn.Module) -> nn.Module:
    """A copy of the UNet whose body convolutions run in int8 (the given network is left as it was)."""
    if not int8_available():
        raise RuntimeError("int8 convolutions need torch's oneDNN quantized kernels (an x86 CPU build)")
    quantized = copy.deepcopy(model)
    for parent, name in list(_body_convs(quantized)):
        setattr(parent, name, Int8Conv2d(getattr(parent, name)))
    return quantized
