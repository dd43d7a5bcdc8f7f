"""Device and numeric precision, chosen in one place.

- fp32 everywhere: the reference path, bit-comparable with OpenAI's code.
- CUDA: fp16 weights following the reference's ``convert_to_fp16`` rule exactly.
- CPU with bf16 support: bf16 autocast, with the UNet body's convolutions stored in bf16 once (autocast would
  otherwise cast those ~380M weights again at every step, which costs more than it saves at small sizes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Precision:
    device: torch.device
    fp16_weights: bool = False
    autocast_dtype: torch.dtype | None = None
    bf16_weights: bool = False
    """Store the UNet body's convolutions in bf16 (they run in bf16 under autocast anyway: same results)."""

    @property
    def name(self) -> str:
        if self.fp16_weights:
            return "fp16"
        if self.autocast_dtype is torch.bfloat16:
            return "bf16" if self.bf16_weights else "bf16-autocast"
        return "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Wrap every network call in this: bf16 autocast where chosen, nothing otherwise (fp16 weights cast
        their own inputs, as the reference's forward does)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> str:
        return f"{self.name} on {self.device}"


def cpu_supports_bf16() -> bool:
    try:
        import torch.backends.mkldnn as mkldnn

        return bool(mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class PrecisionError(ValueError):
    """A device or precision that cannot be used here (the message says why and what to pick instead)."""


MODES = ("auto", "fp32", "fp16", "bf16")


def choose_precision(device: str | torch.device = "auto", mode: str = "auto") -> Precision:
    """``device``: auto | cpu | cuda[:N]; ``mode``: auto | fp32 | fp16 | bf16.

    auto picks fp16 weights on CUDA, bf16 autocast on a CPU with native bf16 (AVX512-BF16 / AMX), fp32 otherwise.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PrecisionError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise PrecisionError(f"unsupported device {device!r} (auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PrecisionError("CUDA was requested but no CUDA device is available to this build of torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise PrecisionError(f"{device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    if mode == "auto":
        mode = "fp16" if dev.type == "cuda" else ("bf16" if cpu_supports_bf16() else "fp32")
    if mode == "fp32":
        return Precision(dev)
    if mode == "fp16":
        if dev.type != "cuda":
            raise PrecisionError("fp16 weights are only supported on CUDA; use bf16 or fp32 on the CPU")
        return Precision(dev, fp16_weights=True)
    if mode == "bf16":
        return Precision(dev, autocast_dtype=torch.bfloat16, bf16_weights=True)
    raise PrecisionError(f"unknown precision mode {mode!r} ({', '.join(MODES)})")


def _convert_body_convs(model: nn.Module, dtype: torch.dtype) -> None:
    for part in (model.input_blocks, model.middle_block, model.output_blocks):
        for module in part.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                module.to(dtype)


def convert_unet_to_fp16(model: nn.Module) -> nn.Module:
    """The reference rule: convs of the UNet body, the text transformer's Linears, transformer_proj and the
    token embedding become fp16; norms, emb_layers, time_embed, out and the text position tables stay fp32."""
    _convert_body_convs(model, torch.float16)
    if getattr(model.config, "xf_width", 0):
        for module in model.transformer.modules():
            if isinstance(module, nn.Linear):
                module.half()
        model.transformer_proj.half()
        model.token_embedding.half()
    return model


def convert_unet_to_bf16(model: nn.Module) -> nn.Module:
    """Only the UNet body's convolutions, the weights every step reads. The text transformer runs once per
    request, so it keeps fp32 weights (and its fp32 residual stream under autocast)."""
    _convert_body_convs(model, torch.bfloat16)
    return model


def prepare_model(model: nn.Module, precision: Precision) -> nn.Module:
    """Move to the device, eval mode, and low-precision weights for GLIDE UNets where chosen.

    In place (the module is returned too): a network converted to fp16/bf16 stays so; reload it for fp32.
    The noised CLIP encoders stay float32, as in the reference.
    """
    model = model.to(precision.device).eval()
    if hasattr(model, "input_blocks"):
        if precision.fp16_weights:
            convert_unet_to_fp16(model)
        elif precision.bf16_weights:
            convert_unet_to_bf16(model)
    return model
