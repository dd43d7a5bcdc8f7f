"""SDXL inpainting on tiny random components built here (two text encoders, the UNet's size and crop
conditioning), saved as a diffusers folder and loaded through the user's path: the modes run with the right
sizes and unmasked pixels, a seed repeats, both encoders and the micro-conditioning reach the UNet, an empty
negative prompt is zeros as the model's pipeline says, and a model whose flags do not fit its UNet is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sd_helpers import tiny_components, write_folder

from glide_studio import cli
from glide_studio.pipelines.request import Mode, Request
from glide_studio.png_metadata import read_record
from glide_studio.runs.drain import drain
from glide_studio.sd import sdxl
from glide_studio.sd.errors import SDModelError
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run

WIDTH, HEIGHT = 44, 36
TIME_WIDTH = 4


def save_sdxl_folder(folder, seed=0, aesthetics=False):
    """An SDXL inpainting folder: the SD 1.x parts, a UNet taking text_time conditioning over both encoders'
    joined width, and text_encoder_2 with its projection."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    parts = tiny_components(seed)
    torch.manual_seed(seed + 100)
    ids = 5 if aesthetics else 6
    parts["unet"] = UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16 + 12, attention_head_dim=2, norm_num_groups=4, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_WIDTH, projection_class_embeddings_input_dim=TIME_WIDTH * ids + 8).eval()
    parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=520, hidden_size=12, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=516, eos_token_id=517, pad_token_id=517, projection_dim=8)).eval()
    return write_folder(folder, parts, "StableDiffusionXLInpaintPipeline", tokenizers=("tokenizer", "tokenizer_2"),
                        index={"force_zeros_for_empty_prompt": True, "requires_aesthetics_score": aesthetics,
                               "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                               "tokenizer_2": ["transformers", "CLIPTokenizer"],
                               "scheduler": ["diffusers", "EulerDiscreteScheduler"]})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_sdxl_folder(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl-inpaint")


@pytest.fixture(scope="module")
def models(folder):
    return load_model(f"sd:{folder}", "cpu", "fp32")


def picture():
    return np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def mask():
    painted = np.zeros((HEIGHT, WIDTH), np.uint8)
    painted[6:24, 10:30] = 255
    return painted


def xl_request(models, mode=Mode.INPAINT, **changes):
    sketch = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    sketch[8:20, 12:26] = (200, 30, 30, 255)
    inputs = {Mode.INPAINT: dict(image=picture(), mask=mask()),
              Mode.SDEDIT: dict(image=picture(), mask=mask(), sketch=sketch), Mode.GENERATE: {}}[mode]
    fields = dict(mode=mode, base_model=models.name, prompt="a red circle", negative_prompt="blurry", steps=3,
                  seed=5, batch=2, guidance_scale=6.0, strength=0.7, **inputs)
    fields.update(changes)
    return Request(**fields)


def test_an_sdxl_folder_loads_both_text_encoders_and_its_pipeline_flags(models):
    assert models.sdxl is not None and models.inpainting
    assert models.sdxl.force_zeros_for_empty_prompt and not models.sdxl.requires_aesthetics_score
    assert models.sdxl.text_encoder_2.config.projection_dim == 8
    embeddings, added = sdxl.conditioning(models, "a red circle", "blurry", 2, guided=True)
    assert embeddings.shape == (4, 16, 16 + 12)  # negative rows then the prompt's, both encoders' widths joined
    assert added["text_embeds"].shape == (4, 8)
    side = float(models.model_size)
    assert added["time_ids"].tolist() == [[side, side, 0.0, 0.0, side, side]] * 4


def test_an_empty_negative_prompt_is_zeros_as_the_models_pipeline_says(models):
    embeddings, added = sdxl.conditioning(models, "a red circle", "", 1, guided=True)
    assert not embeddings[0].any() and not added["text_embeds"][0].any()
    assert embeddings[1].abs().sum() > 0
    encoded, _ = sdxl.conditioning(models, "a red circle", "blurry", 1, guided=True)
    assert torch.equal(encoded[1], embeddings[1])  # the prompt's rows do not depend on the negative prompt


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE])
def test_every_mode_runs_keeps_the_unmasked_pixels_and_repeats_its_seed(models, mode):
    request = xl_request(models, mode)
    steps = []
    first = drain(run(models, request), steps.append)
    assert [step.index for step in steps] == [0, 1, 2]
    if mode == Mode.GENERATE:
        assert first.shape == (2, models.model_size, models.model_size, 3)
    else:
        assert first.shape == (2, HEIGHT, WIDTH, 3)
        kept = mask() == 0
        assert np.array_equal(first[:, kept], np.broadcast_to(picture()[kept], first[:, kept].shape))
    assert np.array_equal(drain(run(models, request)), first)
    assert not np.array_equal(first[0], first[1])


def test_the_second_encoder_and_the_size_conditioning_reach_the_unet(models, monkeypatch):
    request = xl_request(models)
    plain = drain(run(models, request))
    assert not np.array_equal(drain(run(models, request.with_(prompt="a blue square"))), plain)
    seen = []
    original = sdxl._time_ids
    monkeypatch.setattr(sdxl, "_time_ids", lambda *args: [value * 0.5 for value in original(*args)])
    changed = drain(run(models, request), seen.append)
    assert not np.array_equal(changed, plain)  # the time ids are an input the UNet reads
    monkeypatch.undo()
    weight = models.sdxl.text_encoder_2.text_projection.weight
    kept = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(-1.0)
    try:
        flipped = drain(run(models, request))
    finally:
        with torch.no_grad():
            weight.copy_(kept)
    assert not np.array_equal(flipped, plain)  # the pooled projection is read


def test_flags_that_do_not_fit_the_unet_are_a_clear_error_before_the_first_step(tmp_path):
    folder = save_sdxl_folder(tmp_path / "refiner-like", seed=1, aesthetics=True)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "requires_aesthetics_score": False}))
    with pytest.raises(SDModelError, match="added-conditioning values.*requires_aesthetics_score"):
        load_model(f"sd:{folder}", "cpu", "fp32")
    (folder / "model_index.json").write_text(json.dumps(index))  # as saved: the refiner's (size, crop, score)
    models = load_model(f"sd:{folder}", "cpu", "fp32")
    _, added = sdxl.conditioning(models, "a red circle", "blurry", 1, guided=True)
    side = float(models.model_size)
    assert added["time_ids"].tolist() == [[side, side, 0.0, 0.0, 2.5], [side, side, 0.0, 0.0, 6.0]]


def test_an_sdxl_folder_without_its_second_encoder_is_refused_by_name(tmp_path):
    import shutil

    folder = save_sdxl_folder(tmp_path / "broken")
    shutil.rmtree(folder / "text_encoder_2")
    with pytest.raises(SDModelError, match="text_encoder_2"):
        load_model(f"sd:{folder}", "cpu", "fp32")


def test_sdxl_inpaints_from_the_command_line_with_a1111_metadata(tmp_path, folder, user_data_dir):
    picture_path, mask_path = tmp_path / "picture.png", tmp_path / "mask.png"
    Image.fromarray(picture()).save(picture_path)
    Image.fromarray(mask()).save(mask_path)
    model = f"sd:{folder}"
    assert cli.main(["inpaint", "--model", model, "--image", str(picture_path), "--mask", str(mask_path),
                     "--prompt", "a red circle", "--steps", "2", "--seed", "3", "--device", "cpu", "--precision",
                     "fp32", "-q", "-o", str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (HEIGHT, WIDTH, 3) and np.array_equal(out[mask() == 0], picture()[mask() == 0])
    record = read_record(tmp_path / "out.png").record
    assert record.request.base_model == model and len(record.context.model_hash) == 10


def test_an_sdxl_single_file_says_where_sdxl_is_read_from(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "sdxl-inpaint.safetensors"
    save_file({"conditioner.embedders.0.transformer.text_model.embeddings.position_ids": torch.zeros(1, 77),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 9, 3, 3)}, str(path))
    with pytest.raises(SDModelError, match="SDXL checkpoint.*diffusers folder or Hub"):
        load_model(f"sd:{path}", "cpu", "fp32")
