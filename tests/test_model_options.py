"""Every option of GLIDE's options dict: tiny checkpoints made by OpenAI's reference with non-default options
(plain Downsample/Upsample, no text encoder, a wider first level, ...) load strictly and reproduce its outputs.

The fixtures live in tests/data/glide_tiny (see its README); each checkpoint is the reference's
``torch.save(model.state_dict())`` bytes, xz-compressed to keep the repository small.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
import torch

from glide_studio.config import ConfigError, UNetConfig
from glide_studio.models import build_model, convert_unet_to_fp16, load_weights
from glide_studio.models.layers import timestep_embedding

DATA = Path(__file__).parent / "data" / "glide_tiny"
FIXTURES = ["updown-base", "updown-base-inpaint", "updown-upsample", "updown-upsample-inpaint",
            "updown-options", "notext-wide"]


def _fixture(name: str, tmp_path: Path):
    meta = json.loads((DATA / f"{name}.options.json").read_text())
    weights = tmp_path / f"{name}.pt"
    weights.write_bytes(lzma.decompress((DATA / f"{name}.pt.xz").read_bytes()))
    cases = torch.load(DATA / f"{name}.cases.pt", weights_only=True)
    return meta, weights, cases


def _inputs(cases):
    return {k: cases[k] for k in ("tokens", "mask", "inpaint_image", "inpaint_mask", "low_res") if k in cases}


@pytest.mark.parametrize("name", FIXTURES)
def test_reference_checkpoint_loads_strictly_and_matches(name, tmp_path):
    meta, weights, cases = _fixture(name, tmp_path)
    model = build_model(meta["options"])
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert ours == meta["state_dict"]  # names, shapes, dtypes and order
    load_weights(model, weights)
    with torch.no_grad():
        out = model(cases["x_t"], cases["timesteps"], **_inputs(cases))
        t_emb = timestep_embedding(cases["timesteps"], model.config.num_channels)
        time_out = model.time_embed(t_emb)
    torch.testing.assert_close(out, cases["output"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(t_emb, cases["timestep_embedding"], atol=1e-6, rtol=0)
    torch.testing.assert_close(time_out, cases["time_embed_out"], atol=1e-5, rtol=0)
    if model.config.xf_width:
        with torch.no_grad():
            text = model.get_text_emb(cases["tokens"], cases["mask"])
            again = model(cases["x_t"], cases["timesteps"], text_emb=text,
                          **{k: v for k, v in _inputs(cases).items() if k not in ("tokens", "mask")})
        torch.testing.assert_close(text["xf_proj"], cases["xf_proj"], atol=1e-5, rtol=0)
        torch.testing.assert_close(text["xf_out"], cases["xf_out"], atol=1e-5, rtol=0)
        torch.testing.assert_close(again, out, atol=0, rtol=0)


def test_plain_resamplers_use_the_reference_names(tmp_path):
    meta, _, _ = _fixture("updown-base", tmp_path)
    keys = {k for k, _, _ in meta["state_dict"]}
    # image_size 16, channel_mult "1,1", one res block: block 2 downsamples, output block 1 ends upsampling.
    assert {"input_blocks.2.0.op.weight", "input_blocks.2.0.op.bias"} <= keys
    assert {"output_blocks.1.2.conv.weight", "output_blocks.1.2.conv.bias"} <= keys
    model = build_model(meta["options"], device="meta")
    assert model.input_blocks[2][0].op.stride == (2, 2)


def test_unconditional_model_ignores_text(tmp_path):
    meta, weights, cases = _fixture("notext-wide", tmp_path)
    model = load_weights(build_model(meta["options"]), weights)
    tokens = torch.zeros(2, 128, dtype=torch.long)
    with torch.no_grad():
        text = model.get_text_emb(tokens, tokens.bool())
        out = model(cases["x_t"], cases["timesteps"], tokens=tokens, mask=tokens.bool(), text_emb=text)
    torch.testing.assert_close(out, cases["output"], atol=1e-4, rtol=1e-4)


def test_fp16_conversion_covers_plain_resamplers(tmp_path):
    meta, _, _ = _fixture("updown-base", tmp_path)
    model = convert_unet_to_fp16(build_model(meta["options"], device="meta"))
    # The reference converts every conv of the body, the Downsample/Upsample convs included.
    assert model.input_blocks[2][0].op.weight.dtype == torch.float16
    assert model.output_blocks[1][2].conv.weight.dtype == torch.float16


def test_option_round_trip(tmp_path):
    for name in FIXTURES:
        meta, _, _ = _fixture(name, tmp_path)
        config = UNetConfig.from_options(meta["options"])
        assert UNetConfig.from_options(config.to_options()) == config


@pytest.mark.parametrize(("options", "message"), [
    ({"learn_sigma": False}, "learn_sigma: GLIDE's UNets always output eps and a learned variance"),
    ({"class_cond": True}, "class_cond: GLIDE conditions on text"),
    ({"conv_resample": False}, "conv_resample"),
    ({"noise_schedule": "cosine"}, "noise_schedule 'cosine'"),
    ({"diffusion_steps": 4000}, "diffusion_steps 4000"),
    ({"timestep_respacing": "fast"}, "timestep_respacing 'fast'"),
    ({"num_head_channels": 100}, "num_head_channels 100"),
    ({"num_head_channels": -1, "num_heads": 5}, "num_heads 5"),
    ({"num_head_channels": -1, "num_heads": 2, "num_heads_upsample": 7}, "num_heads_upsample 7"),
    ({"dropout": 1.0}, "dropout"),
    ({"channel_mult": "1,0,2,2"}, "channel_mult"),
])
def test_unusable_options_are_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message):
        build_model(options, device="meta")


def test_default_options_of_both_reference_families_build():
    # model_and_diffusion_defaults() and ..._upsampler(): use_fp16, cache_text_emb and the respacing are
    # accepted though they change nothing in the network (precision and steps are chosen per request).
    for options in ({}, {"image_size": 256, "num_res_blocks": 2, "noise_schedule": "linear", "super_res": True}):
        build_model({**options, "use_fp16": True, "cache_text_emb": True, "timestep_respacing": "ddim50"},
                    device="meta")
