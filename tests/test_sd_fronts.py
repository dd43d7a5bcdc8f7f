"""A Stable Diffusion model through the user's fronts: the command line (run, PNG metadata in A1111's words,
repeat) and the editor's engine, from a diffusers folder and a single file; and, without the sd extra, a clear
message saying how to get it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sd_helpers import save_folder, save_single_file

from glide_studio import cli
from glide_studio.pipelines.request import Mode, Request, Scheduler
from glide_studio.png_metadata import parse_a1111, read_record
from glide_studio.runs.drain import drain

WIDTH, HEIGHT = 48, 40


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd-models")
    folder = save_folder(root / "tiny-inpaint", seed=3)
    return folder, save_single_file(folder, root / "tiny-single.safetensors")


@pytest.fixture
def inputs(tmp_path):
    picture = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[8:30, 10:34] = 255
    sketch = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    sketch[12:24, 14:30] = (20, 200, 40, 255)
    paths = {name: tmp_path / f"{name}.png" for name in ("picture", "mask", "sketch")}
    for name, array in zip(paths, (picture, mask, sketch), strict=True):
        Image.fromarray(array).save(paths[name])
    return paths, picture, mask


@pytest.mark.parametrize("mode", ["inpaint", "sdedit", "generate"])
@pytest.mark.parametrize("which", ["folder", "single"])
def test_each_mode_runs_from_the_command_line_and_repeats(tmp_path, model_files, inputs, user_data_dir, mode, which):
    paths, picture, mask = inputs
    model = f"sd:{model_files[0] if which == 'folder' else model_files[1]}"
    args = [mode, "--model", model, "--prompt", "a green leaf", "--negative-prompt", "blurry, text",
            "--scheduler", "Euler a", "--steps", "3", "--guidance-scale", "6", "--seed", "4", "--candidates", "2",
            "--device", "cpu", "--precision", "fp32", "-q", "-o", str(tmp_path / "out-{candidate}.png")]
    if mode != "generate":
        args += ["--image", str(paths["picture"]), "--mask", str(paths["mask"])]
    if mode == "sdedit":
        args += ["--sketch", str(paths["sketch"]), "--strength", "0.7"]
    assert cli.main(args) == 0
    outputs = [np.asarray(Image.open(tmp_path / f"out-{index}.png")) for index in range(2)]
    if mode == "generate":
        assert outputs[0].shape == (32, 32, 3)  # the tiny model's own size
    else:
        assert outputs[0].shape == (HEIGHT, WIDTH, 3)
        kept = mask == 0
        assert all(np.array_equal(output[kept], picture[kept]) for output in outputs)
    assert not np.array_equal(outputs[0], outputs[1])

    record = read_record(tmp_path / "out-1.png").record
    assert record.request.base_model == model and record.request.scheduler == Scheduler.EULER_A
    assert record.request.negative_prompt == "blurry, text" and len(record.context.model_hash) == 10
    text = Image.open(tmp_path / "out-1.png").text["parameters"]
    prompt, negative, settings = text.split("\n")
    assert prompt == "a green leaf" and negative == "Negative prompt: blurry, text"
    for part in ("Steps: 3", "Sampler: Euler a", "CFG scale: 6", "Size: ", f"Model hash: {record.context.model_hash}",
                 "Model: "):
        assert part in settings
    assert "Hires" not in settings and "Guidance:" not in settings  # GLIDE's own settings stay out
    read_back = parse_a1111(text).record.request
    assert read_back.scheduler == Scheduler.EULER_A and read_back.negative_prompt == "blurry, text"

    assert cli.main(["repeat", str(tmp_path / "out-0.png"), "-q", "-o", str(tmp_path / "again.png")]) == 0
    again = sorted(tmp_path.glob("again*.png"))
    assert np.array_equal(np.asarray(Image.open(again[0])), outputs[0])


def test_the_editor_engine_runs_the_same_pixels_as_the_command_line(tmp_path, model_files, inputs, user_data_dir):
    from glide_studio.app.engine import PipelineEngine

    paths, picture, mask = inputs
    model = f"sd:{model_files[0]}"
    assert cli.main(["inpaint", "--model", model, "--image", str(paths["picture"]), "--mask", str(paths["mask"]),
                     "--prompt", "a cat", "--steps", "3", "--seed", "9", "--box", "0,0,48,40", "--device", "cpu",
                     "--precision", "fp32", "-q", "-o", str(tmp_path / "cli.png")]) == 0
    from glide_studio.pipelines.request import EditBox

    request = Request(mode=Mode.INPAINT, base_model=model, image=picture, mask=mask, prompt="a cat", steps=3, seed=9,
                      edit_box=EditBox(0, 0, 48, 40)).with_family_defaults()  # as the picker sets an SD model up
    engine = PipelineEngine(precision="fp32")
    engine.prepare(request, "cpu")
    steps = []
    final = drain(engine.run(request), steps.append)
    assert len(steps) == 3 and all(step.x_t.shape[1] == 3 for step in steps)
    assert np.array_equal(final[0], np.asarray(Image.open(tmp_path / "cli.png")))
    assert engine.context().model_hash and engine.context().precision == "fp32"
    resumed = drain(engine.run(request, resume=steps[0].state.to("cpu")))
    assert np.array_equal(resumed, final)


def test_a_missing_model_is_a_clear_error_without_a_traceback(tmp_path, capsys, user_data_dir):
    args = ["generate", "--model", f"sd:{tmp_path / 'nowhere.safetensors'}", "--prompt", "x", "-q", "-o",
            str(tmp_path / "x.png")]
    assert cli.main(args) != 0
    error = capsys.readouterr().err
    assert "nowhere.safetensors: no such file" in error and "Traceback" not in error
    pickled = tmp_path / "model.ckpt"
    pickled.write_bytes(b"not opened")
    assert cli.main([*args[:2], f"sd:{pickled}", *args[3:]]) != 0
    assert "pickled checkpoint" in capsys.readouterr().err


def test_without_the_sd_extra_the_run_says_how_to_get_it(tmp_path, capsys, monkeypatch, user_data_dir):
    from glide_studio import sd

    monkeypatch.setattr(sd, "available", lambda: False)
    args = ["generate", "--model", "sd:sd15-inpainting", "--prompt", "x", "-q", "-o", str(tmp_path / "x.png")]
    assert cli.main(args) != 0
    error = capsys.readouterr().err
    assert 'pip install "glide-studio[sd]"' in error and "Traceback" not in error


def test_sd_models_lists_the_known_models_with_size_and_licence(capsys, monkeypatch):
    from glide_studio import sd

    assert cli.main(["sd-models"]) == 0
    listed = capsys.readouterr().out
    assert "sd:sd15-inpainting" in listed and "stable-diffusion-v1-5/stable-diffusion-inpainting" in listed
    assert "licence: CreativeML OpenRAIL-M" in listed and "GB" in listed
    monkeypatch.setattr(sd, "available", lambda: False)
    assert cli.main(["sd-models"]) == 0
    assert 'pip install "glide-studio[sd]"' in capsys.readouterr().out


def test_an_sd_run_without_a_cfg_scale_takes_sds_usual_and_a_given_one_stays(tmp_path, model_files, user_data_dir):
    model = f"sd:{model_files[0]}"
    common = ["generate", "--model", model, "--prompt", "a leaf", "--steps", "1", "--seed", "2", "--device", "cpu",
              "--precision", "fp32", "-q"]
    assert cli.main([*common, "-o", str(tmp_path / "usual.png")]) == 0
    assert read_record(tmp_path / "usual.png").record.request.guidance_scale == 7.5
    assert cli.main([*common, "--guidance-scale", "3", "-o", str(tmp_path / "given.png")]) == 0
    assert read_record(tmp_path / "given.png").record.request.guidance_scale == 3.0
