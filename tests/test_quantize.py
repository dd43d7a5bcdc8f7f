"""Dynamic int8 convolutions: a quantized copy of the UNet whose body convolutions run in int8, close to the
float network, the original left untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glide_studio.config import UNetConfig
from glide_studio.models import build_model
from glide_studio.models.quantize import Int8Conv2d, int8_available, quantize_convs

pytestmark = pytest.mark.skipif(not int8_available(), reason="this torch build has no oneDNN int8 kernels")


def _random_unet() -> nn.Module:
    config = UNetConfig(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                        attention_resolutions=(16,), num_head_channels=16, xf_width=0, xf_layers=0, inpaint=False)
    model = build_model(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # nothing zero: the zero-initialised output convolutions contribute too
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(noise / parameter[0].numel() ** 0.5 if parameter.ndim >= 2 else 1 + 0.02 * noise)
    return model


def test_a_single_convolution_is_within_int8_error_of_float():
    conv = nn.Conv2d(32, 48, 3, padding=1)
    x = torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        exact = conv(x)
        approx = Int8Conv2d(conv)(x)
    assert approx.dtype == exact.dtype and approx.shape == exact.shape
    relative = (approx - exact).abs().max() / exact.abs().max()
    assert 0 < relative < 0.03


def test_the_quantized_copy_runs_close_to_the_network_and_leaves_it_untouched():
    model = _random_unet()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    quantized = quantize_convs(model)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 700])
    with torch.no_grad():
        exact, approx = model(x, t), quantized(x, t)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert not any(isinstance(module, Int8Conv2d) for module in model.modules())
    converted = [module for module in quantized.modules() if isinstance(module, Int8Conv2d)]
    assert len(converted) == sum(isinstance(m, nn.Conv2d) for m in model.modules()) - 2  # not the stem nor head
    relative = (approx - exact).abs().mean() / exact.abs().mean()
    assert 0 < relative < 0.1


def test_int8_runs_under_bf16_autocast_and_returns_bf16():
    conv = nn.Conv2d(32, 32, 1).to(torch.bfloat16)
    x = torch.randn(1, 32, 8, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        out = Int8Conv2d(conv)(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), conv(x).float(), rtol=0.05, atol=0.05)
