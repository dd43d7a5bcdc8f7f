"""PNGs carrying their run: written, read back, and turned into the same request."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from glide_studio import __version__
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.png_metadata import (
    InputMismatchError,
    MetadataError,
    a1111_text,
    array_digest,
    read_parameters,
    request_from_metadata,
    write_png,
)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[10:20, 10:30] = 255
    sketch = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    return image, mask, sketch


@pytest.fixture
def request_(inputs):
    image, mask, sketch = inputs
    return Request(
        mode=Mode.SDEDIT,
        prompt="a red circle above a blue square — «ünïcode»\nsecond line",
        image=image,
        mask=mask,
        sketch=sketch,
        edit_box=EditBox(3, 4, 40, 30),
        base_model="demo-base-inpaint",
        upsample_model=None,
        steps=17,
        upsample_steps=9,
        sampler="ddim",
        guidance_scale=4.5,
        strength=0.55,
        seed=1234,
        batch=3,
    )


def test_round_trip_gives_the_same_request(tmp_path, request_, inputs):
    result = np.full((64, 64, 3), 77, dtype=np.uint8)
    path = write_png(tmp_path / "out.png", result, request_, candidate=2, input_paths={"image": "pic.png"})
    assert np.array_equal(np.asarray(Image.open(path)), result)

    meta = read_parameters(path)
    assert meta["source"] == "glide_studio" and meta["app_version"] == __version__
    assert meta["candidate"] == 2
    assert meta["inputs"]["image"]["path"].endswith("pic.png")
    assert meta["inputs"]["mask"]["sha256"] == array_digest(inputs[1], "mask")
    assert "path" not in meta["inputs"]["mask"]

    image, mask, sketch = inputs
    given = {"image": image, "mask": mask > 0, "sketch": sketch}
    again = request_from_metadata(meta, **given)
    for field in dataclasses.fields(Request):
        if field.name in given:
            assert getattr(again, field.name) is given[field.name]
        else:
            assert getattr(again, field.name) == getattr(request_, field.name), field.name
    assert again == request_ and isinstance(again.mode, Mode) and isinstance(again.edit_box, EditBox)


def test_a1111_parameters_text(tmp_path, request_):
    path = write_png(tmp_path / "out.png", np.zeros((48, 64, 3), np.uint8), request_, candidate=1)
    text = Image.open(path).text["parameters"]
    prompt, settings = text.rsplit("\n", 1)
    assert prompt == request_.prompt
    assert settings.startswith("Steps: 17, Sampler: ddim, CFG scale: 4.5, Seed: 1234, Size: 64x48, Model: ")
    assert "Denoising strength: 0.55" in settings and "Batch pos: 1" in settings


def test_foreign_a1111_file_is_read_as_best_effort(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a castle on a hill\nNegative prompt: blurry\n"
        "Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15, "
        'Lora hashes: "a: 1, b: 2"',
    )
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    meta = read_parameters(path)
    assert meta["source"] == "a1111"
    assert meta["negative_prompt"] == "blurry"
    assert meta["raw"]["Lora hashes"] == "a: 1, b: 2"
    request = request_from_metadata(meta)
    assert (request.prompt, request.steps, request.sampler) == ("a castle on a hill", 30, "Euler a")
    assert request.seed == 42
    assert request.guidance_scale == 7.0 and request.base_model == "sd15" and request.mode is Mode.GENERATE


def test_inputs_are_checked_against_the_recorded_digests(tmp_path, request_, inputs):
    image, mask, sketch = inputs
    meta = read_parameters(write_png(tmp_path / "out.png", np.zeros((8, 8, 3), np.uint8), request_))
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    with pytest.raises(InputMismatchError, match="input image differs"):
        request_from_metadata(meta, image=changed, mask=mask, sketch=sketch)
    with pytest.raises(InputMismatchError, match="must be given"):
        request_from_metadata(meta, image=image, mask=mask)
    unchecked = request_from_metadata(meta, image=changed, verify=False, seed=9)
    assert unchecked.seed == 9 and unchecked.mask is None


def test_files_without_parameters_are_refused(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(MetadataError, match="no generation parameters"):
        read_parameters(plain)
    junk = tmp_path / "junk.png"
    junk.write_text("nope")
    with pytest.raises(MetadataError, match="not an image"):
        read_parameters(junk)
    with pytest.raises(MetadataError, match="no such file"):
        read_parameters(tmp_path / "missing.png")


def test_broken_or_foreign_json_is_handled(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("glide_studio", "{not json")
    broken = tmp_path / "broken.png"
    Image.new("RGB", (4, 4)).save(broken, pnginfo=info)
    with pytest.raises(MetadataError, match="not valid JSON"):
        read_parameters(broken)

    future = {"request": {"mode": "inpaint", "prompt": "x", "a_future_field": 1}, "inputs": {}}
    assert request_from_metadata(future).mode is Mode.INPAINT
    with pytest.raises(MetadataError, match="unknown mode"):
        request_from_metadata({"request": {"mode": "teleport"}})
    with pytest.raises(MetadataError, match="edit box"):
        request_from_metadata({"request": {"mode": "inpaint", "edit_box": {"x": 1}}})


def test_mask_digest_ignores_the_mask_encoding(inputs):
    _, mask, _ = inputs
    assert array_digest(mask, "mask") == array_digest(mask > 0, "mask")
    assert array_digest(mask, "mask") == array_digest((mask > 0).astype(np.uint8), "mask")
    assert array_digest(mask) != array_digest(mask.T.copy())


def test_text_for_generate_without_upsampler():
    request = Request(mode=Mode.GENERATE, prompt="p", upsample_model=None, seed=1, sampler="dpm++2m")
    text = a1111_text(request, (64, 64))
    assert text.startswith("p\nSteps: 25, Sampler: dpm++2m, CFG scale: 3, Seed: 1, Size: 64x64")
    assert "Hires" not in text and "Denoising" not in text and "Mode: generate" in text
