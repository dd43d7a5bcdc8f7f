"""The GLIDE networks: official checkpoint layouts, forward parity with the reference, safe loading."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from glide_studio.config import UNET_PRESETS, ConfigError, UNetConfig
from glide_studio.models import (
    WeightsError,
    build_clip_image_encoder,
    build_clip_text_encoder,
    build_model,
    load_weights,
)
from glide_studio.models.layers import timestep_embedding

UNET_MANIFESTS = ["base", "upsample", "base-inpaint", "upsample-inpaint"]
UNET_TINY = ["tiny-base", "tiny-base-inpaint", "tiny-upsample", "tiny-upsample-inpaint"]


def _manifest(reference_dir, name):
    return json.loads((reference_dir / "manifests" / f"{name}.json").read_text())


def _build_from_manifest(manifest, device="meta"):
    if manifest["name"] == "clip-image-enc":
        return build_clip_image_encoder(manifest["options"], device=device)
    if manifest["name"] == "clip-text-enc":
        return build_clip_text_encoder(manifest["options"], device=device)
    return build_model(manifest["options"], device=device)


@pytest.mark.parametrize("name", UNET_MANIFESTS + ["clip-image-enc", "clip-text-enc"])
def test_official_architecture_matches_manifest(reference_dir, name):
    manifest = _manifest(reference_dir, name)
    model = _build_from_manifest(manifest)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(k, shape) for k, shape, _ in manifest["state_dict"]]
    assert ours == theirs  # names, shapes and order
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["num_params"]

    # A state dict of exactly that form loads strictly (meta tensors: no memory is used).
    state = {k: torch.empty(shape, device="meta") for k, shape, _ in manifest["state_dict"]}
    load_weights(model, state)


@pytest.mark.parametrize("name", UNET_MANIFESTS)
def test_presets_equal_official_options(reference_dir, name):
    manifest = _manifest(reference_dir, name)
    official = UNetConfig.from_options({**manifest["options"], "use_fp16": False})
    assert UNET_PRESETS[name] == official


@pytest.mark.parametrize("name", UNET_TINY)
def test_tiny_unet_reproduces_reference_outputs(reference_dir, name):
    options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
    model = load_weights(build_model(options), reference_dir / f"{name}.pt")
    cases = torch.load(reference_dir / f"{name}.cases.pt", weights_only=True)
    extra = {k: cases[k] for k in ("inpaint_image", "inpaint_mask", "low_res") if k in cases}
    with torch.no_grad():
        out = model(cases["x_t"], cases["timesteps"], tokens=cases["tokens"], mask=cases["mask"], **extra)
        text = model.get_text_emb(cases["tokens"], cases["mask"])
        t_emb = timestep_embedding(cases["timesteps"], model.config.num_channels)
        time_out = model.time_embed(t_emb)
        # Passing the precomputed text embedding gives the same result as tokens + mask.
        out_again = model(cases["x_t"], cases["timesteps"], text_emb=text, **extra)
    torch.testing.assert_close(out, cases["output"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(text["xf_proj"], cases["xf_proj"], atol=1e-5, rtol=0)
    torch.testing.assert_close(text["xf_out"], cases["xf_out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(t_emb, cases["timestep_embedding"], atol=1e-6, rtol=0)
    torch.testing.assert_close(time_out, cases["time_embed_out"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_again, out, atol=0, rtol=0)


def test_tiny_clip_encoders_reproduce_reference(reference_dir):
    from glide_studio.models import normalize_embedding

    image_opts = json.loads((reference_dir / "tiny-clip-image-enc.options.json").read_text())["options"]
    text_opts = json.loads((reference_dir / "tiny-clip-text-enc.options.json").read_text())["options"]
    image_enc = load_weights(build_clip_image_encoder(image_opts), reference_dir / "tiny-clip-image-enc.pt")
    text_enc = load_weights(build_clip_text_encoder(text_opts), reference_dir / "tiny-clip-text-enc.pt")
    ic = torch.load(reference_dir / "tiny-clip-image-enc.cases.pt", weights_only=True)
    tc = torch.load(reference_dir / "tiny-clip-text-enc.cases.pt", weights_only=True)
    with torch.no_grad():
        z_img = image_enc((ic["image"] + 1) * 127.5, ic["timesteps"])
        z_txt = text_enc(tc["tokens"], tc["text_len"])
    torch.testing.assert_close(z_img, ic["image_encoder_output"], atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize_embedding(z_img), ic["image_embeddings"], atol=1e-5, rtol=0)
    torch.testing.assert_close(z_txt, tc["text_encoder_output"], atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize_embedding(z_txt), tc["text_embeddings"], atol=1e-5, rtol=0)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would have run arbitrary code",))


@pytest.fixture()
def tiny_base(reference_dir):
    options = json.loads((reference_dir / "tiny-base.options.json").read_text())["options"]
    return build_model(options), reference_dir / "tiny-base.pt"


def test_pickle_with_code_is_refused(tmp_path, tiny_base):
    model, _ = tiny_base
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"weight": _RunsCode()}, f)
    with pytest.raises(WeightsError, match="could run code"):
        load_weights(model, bad)


def test_truncated_file_is_refused(tmp_path, tiny_base):
    model, good = tiny_base
    data = good.read_bytes()
    for suffix in (".pt", ".safetensors"):
        cut = tmp_path / f"cut{suffix}"
        if suffix == ".pt":
            cut.write_bytes(data[: len(data) // 2])
        else:
            from safetensors.torch import save_file

            full = tmp_path / "full.safetensors"
            save_file(torch.load(good, weights_only=True), str(full))
            cut.write_bytes(full.read_bytes()[:-1000])
        with pytest.raises(WeightsError, match="truncated or corrupt"):
            load_weights(model, cut)


def test_missing_key_is_named(tmp_path, tiny_base):
    model, good = tiny_base
    state = torch.load(good, weights_only=True)
    del state["out.2.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"missing keys: out\.2\.weight"):
        load_weights(model, tmp_path / "missing.pt")


def test_other_variant_is_named(reference_dir, tiny_base):
    model, _ = tiny_base
    with pytest.raises(WeightsError, match="another GLIDE variant") as info:
        load_weights(model, reference_dir / "tiny-base-inpaint.pt")
    assert "wrong shapes" in str(info.value)


def test_safetensors_round_trip(tmp_path, tiny_base):
    from safetensors.torch import save_file

    model, good = tiny_base
    save_file(torch.load(good, weights_only=True), str(tmp_path / "w.safetensors"))
    load_weights(model, tmp_path / "w.safetensors")
    torch.testing.assert_close(model.state_dict()["out.2.weight"], torch.load(good, weights_only=True)["out.2.weight"])


def test_bad_options_give_clear_errors():
    with pytest.raises(ConfigError, match="unknown GLIDE option"):
        build_model({"image_size": 64, "learn_everything": True})
    with pytest.raises(ConfigError, match="channel_mult"):
        build_model({"image_size": 48})
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_model({"num_channels": 48})
