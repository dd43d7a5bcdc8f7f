"""PNGs carrying their run: written, read back, and turned into the same record."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from glide_studio import __version__
from glide_studio.pipelines.request import EditBox, Guidance, Mode, Request
from glide_studio.png_metadata import (
    InputMismatchError,
    MetadataError,
    a1111_text,
    check_inputs,
    read_record,
    record_from_json,
    write_png,
)
from glide_studio.runs.codec import encode
from glide_studio.runs.record import RunContext, RunRecord, array_digest

CONTEXT = RunContext("cpu", "bf16", {"torch": "x"})


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
    record = RunRecord.of(request_, CONTEXT, candidate=2, paths={"image": "pic.png"})
    path = write_png(tmp_path / "out.png", result, record)
    assert np.array_equal(np.asarray(Image.open(path)), result)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left behind

    read = read_record(path)
    assert read.source == "glide_studio" and read.app_version == __version__
    again = read.record
    assert again.candidate == 2 and again.context == CONTEXT and again.context.versions == {"torch": "x"}
    assert again.inputs["image"].path == "pic.png"
    assert again.inputs["mask"].sha256 == array_digest(inputs[1], "mask")
    assert again.inputs["mask"].path is None and again.inputs["sketch"].shape == (48, 64, 4)
    assert again == record
    pixel_fields = [field.name for field in dataclasses.fields(Request) if field.metadata.get("pixels")]
    assert pixel_fields and all(getattr(again.request, name) is None for name in pixel_fields)  # digests only
    assert again.request == request_ and isinstance(again.request.mode, Mode)
    assert isinstance(again.request.edit_box, EditBox) and again.request.sampler == "ddim"


def test_a1111_parameters_text(tmp_path, request_):
    record = RunRecord.of(request_, CONTEXT, candidate=1)
    path = write_png(tmp_path / "out.png", np.zeros((48, 64, 3), np.uint8), record)
    text = Image.open(path).text["parameters"]
    prompt, settings = text.rsplit("\n", 1)
    assert prompt == request_.prompt
    # A1111's sampler name; the picture's own seed (candidate 1 of a batch from 1234), as A1111 writes it.
    assert settings.startswith("Steps: 17, Sampler: DDIM, Eta: 0, CFG scale: 4.5, Guidance: cfg, Seed: 1235, "
                               "Denoising strength: 0.55, Batch size: 3")
    assert "Size: 64x48" in settings and "Batch pos: 1" in settings and 'Edit box: "3,4,40,30"' in settings
    assert json.loads(Image.open(path).text["glide_studio"])["request"]["seed"] == 1234  # the run's, in the JSON
    assert "Hires" not in settings  # no upsampler


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
    read = read_record(path)
    assert read.source == "a1111"
    assert read.negative_prompt == "blurry"
    assert read.raw["Lora hashes"] == "a: 1, b: 2" and read.raw["Sampler"] == "Euler a"
    request = read.record.request
    assert (request.prompt, request.steps, request.seed) == ("a castle on a hill", 30, 42)
    assert request.sampler == Request().sampler  # a sampler we do not have is left at ours
    assert request.guidance_scale == 7.0 and request.base_model == "sd15" and request.mode is Mode.GENERATE


def test_our_own_a1111_text_reads_back_to_the_same_request(request_):
    from glide_studio.png_metadata import parse_a1111

    request = request_.with_(upsample_model="demo-upsample-inpaint", guidance=Guidance.CLIP)
    read = parse_a1111(a1111_text(RunRecord(request, candidate=2), (64, 48)))
    assert read.record.request == request and read.record.candidate == 2


def test_inputs_are_checked_against_the_recorded_digests(tmp_path, request_, inputs):
    image, mask, sketch = inputs
    path = write_png(tmp_path / "out.png", np.zeros((8, 8, 3), np.uint8), RunRecord.of(request_, CONTEXT))
    record = read_record(path).record
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    with pytest.raises(InputMismatchError, match="input image differs"):
        check_inputs(record, {"image": changed, "mask": mask, "sketch": sketch})
    with pytest.raises(InputMismatchError, match="must be given"):
        check_inputs(record, {"image": image, "mask": mask, "sketch": None})
    check_inputs(record, {"image": image, "mask": mask > 0, "sketch": sketch})


def test_files_without_parameters_are_refused(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(MetadataError, match="no generation parameters"):
        read_record(plain)
    junk = tmp_path / "junk.png"
    junk.write_text("nope")
    with pytest.raises(MetadataError, match="not an image"):
        read_record(junk)
    with pytest.raises(MetadataError, match="no such file"):
        read_record(tmp_path / "missing.png")


def test_broken_or_foreign_json_is_handled(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("glide_studio", "{not json")
    broken = tmp_path / "broken.png"
    Image.new("RGB", (4, 4)).save(broken, pnginfo=info)
    with pytest.raises(MetadataError, match="not valid JSON"):
        read_record(broken)

    future = {"format": 3, "request": {"mode": "inpaint", "prompt": "x", "a_future_field": 1}, "inputs": {}}
    assert record_from_json(future).record.request.mode is Mode.INPAINT
    with pytest.raises(MetadataError, match="unknown value 'teleport'"):
        record_from_json({"request": {"mode": "teleport"}})
    with pytest.raises(MetadataError, match="edit_box"):
        record_from_json({"request": {"mode": "inpaint", "edit_box": {"x": 1}}})
    with pytest.raises(MetadataError, match="steps should be a whole number"):
        record_from_json({"request": {"mode": "inpaint", "steps": "many"}})
    with pytest.raises(MetadataError, match="no request"):
        record_from_json({"request": []})


def test_first_format_files_still_read(tmp_path):
    """Files written before the run record: the request, and the device under "extra"."""
    old = {"format": 1, "app_version": "0.1.0", "candidate": 1, "extra": {"device": "cuda"},
           "request": {"mode": "sdedit", "prompt": "p", "sampler": "ddim", "seed": 3, "edit_box": None},
           "inputs": {"image": {"sha256": "ab", "shape": [4, 4, 3]}}}
    info = PngImagePlugin.PngInfo()
    info.add_itxt("glide_studio", json.dumps(old), zip=True)
    path = tmp_path / "old.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    record = read_record(path).record
    assert record.context == RunContext("cuda", None) and record.candidate == 1
    # The speed levers came later: such a run ran without them, and reads so (their `unrecorded` values).
    before_levers = {found.name: found.metadata["unrecorded"] for found in dataclasses.fields(Request)
                     if "unrecorded" in found.metadata}
    assert before_levers["reuse_interval"] == 1 and before_levers["upsample_strength"] == 1.0
    assert record.request == Request(mode=Mode.SDEDIT, prompt="p", sampler="ddim", seed=3, **before_levers)
    assert record.inputs["image"].shape == (4, 4, 3)


def test_mask_digest_ignores_the_mask_encoding(inputs):
    _, mask, _ = inputs
    assert array_digest(mask, "mask") == array_digest(mask > 0, "mask")
    assert array_digest(mask, "mask") == array_digest((mask > 0).astype(np.uint8), "mask")
    assert array_digest(mask) != array_digest(mask.T.copy())


def test_text_for_generate_without_upsampler():
    request = Request(mode=Mode.GENERATE, prompt="p", upsample_model=None, seed=1, sampler="dpm++2m", steps=25)
    text = a1111_text(RunRecord(request), (64, 64))
    assert text.startswith("p\nSteps: 25, Sampler: DPM++ 2M, CFG scale: 3, Guidance: cfg, Seed: 1")
    assert "Hires" not in text and "Denoising" not in text and "Eta" not in text and "Mode: generate" in text
    assert encode(request)["sampler"] == "dpm++2m"


def test_hostile_metadata_is_refused_clearly_and_quickly():
    import time

    from glide_studio.png_metadata import parse_a1111

    started = time.perf_counter()
    huge = parse_a1111("p\nSteps: 20, " + "a" * 1_000_000 + ", Seed: 3")
    assert time.perf_counter() - started < 2.0 and huge.record.request.seed == 3
    assert parse_a1111('p\nSteps: 9, Seed: 1208925819614629174706176, Edit box: "1,2,3"').record.request.seed == 0
    for field, value, message in (("seed", 2**80, "seed must be from"), ("steps", True, "whole number"),
                                  ("sampler", {}, "sampler: unknown value"),
                                  ("guidance_scale", float("inf"), "should be a number")):
        with pytest.raises(MetadataError, match=message):
            record_from_json({"request": {"mode": "inpaint", field: value}})


def test_deeply_nested_json_is_a_metadata_error(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("glide_studio", "[" * 100_000 + "]" * 100_000, zip=True)
    path = tmp_path / "deep.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with pytest.raises(MetadataError):
        read_record(path)


@pytest.mark.parametrize(("sampler", "name"), [("dpm++2m-sde", "DPM++ 2M SDE"), ("dpm++2m", "DPM++ 2M"),
                                               ("ddim", "DDIM"), ("ancestral", "DDPM")])
def test_samplers_go_by_a1111_names_in_the_text_and_by_ours_in_the_json(tmp_path, sampler, name):
    from glide_studio.png_metadata import parse_a1111

    request = Request(mode=Mode.GENERATE, prompt="p", sampler=sampler, seed=9, batch=2)
    path = write_png(tmp_path / "s.png", np.zeros((4, 4, 3), np.uint8), RunRecord(request, candidate=1))
    texts = Image.open(path).text
    assert f"Sampler: {name}," in texts["parameters"] and "Seed: 10," in texts["parameters"]
    assert json.loads(texts["glide_studio"])["request"]["sampler"] == sampler
    read = parse_a1111(texts["parameters"]).record
    assert read.request.sampler == sampler and read.candidate == 1
    assert read.request.seed == 9 and read.request.candidate_seed(1) == 10  # the batch's seed, and this picture's
    assert parse_a1111(f"p\nSteps: 3, Sampler: {name.lower()}, Seed: 4").record.request.sampler == sampler
    assert parse_a1111(f"p\nSteps: 3, Sampler: {sampler}, Seed: 4").record.request.sampler == sampler


def test_shared_metadata_names_input_files_without_their_folders(tmp_path, request_):
    secret = "/home/someone/private/holiday"
    record = RunRecord.of(request_, CONTEXT, paths={"image": f"{secret}/pic.png", "mask": "masks/m.png"})
    path = write_png(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8), record)
    assert secret.encode() not in path.read_bytes() and b"masks/" not in path.read_bytes()
    read = read_record(path).record
    assert read.inputs["image"].path == "pic.png" and read.inputs["mask"].path == "m.png"
    assert read.inputs["image"].sha256 == record.inputs["image"].sha256


def test_a_prompt_that_is_not_utf8_is_refused_before_anything_is_written(tmp_path):
    from glide_studio.png_metadata import check_writable

    prompt = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")  # Latin-1 bytes as the shell hands them over
    record = RunRecord(Request(mode=Mode.GENERATE, prompt=prompt))
    with pytest.raises(MetadataError, match=r"the prompt is not valid UTF-8 text \(byte 0xe9\) at character 3"):
        check_writable(record)
    with pytest.raises(MetadataError, match="not valid UTF-8"):
        write_png(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8), record)
    assert list(tmp_path.iterdir()) == []


def test_batches_written_before_per_candidate_seeds_are_marked(tmp_path):
    old = {"format": 2, "request": {"mode": "generate", "prompt": "p", "seed": 3, "batch": 4}, "context": {}}
    assert record_from_json(old).shared_noise
    assert not record_from_json({**old, "request": {**old["request"], "batch": 1}}).shared_noise  # one: as now
    path = write_png(tmp_path / "new.png", np.zeros((4, 4, 3), np.uint8),
                     RunRecord(Request(mode=Mode.GENERATE, batch=4), candidate=3))
    assert json.loads(Image.open(path).text["glide_studio"])["format"] == 3 and not read_record(path).shared_noise
