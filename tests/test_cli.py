"""The glide-studio command: version, help, GUI hand-off, and headless runs that can be repeated."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from glide_studio import __version__, cli, cli_run
from glide_studio.pipelines.request import Guidance
from glide_studio.png_metadata import read_record
from glide_studio.runs import models as run_models
from glide_studio.runs.codec import encode


def test_version_and_help_in_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "glide_studio", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"glide-studio {__version__}"
    done = subprocess.run([sys.executable, "-m", "glide_studio", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("generate", "inpaint", "sdedit", "upsample", "repeat"):
        assert command in done.stdout


def test_mode_help_lists_the_run_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inpaint", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = ("--image", "--mask", "--box", "--from-png", "--guidance-scale", "--candidates", "--output")
    assert all(option in text for option in options)


def test_no_command_opens_the_editor(monkeypatch):
    calls = []
    fake = types.ModuleType("glide_studio.ui.main_window")
    fake.run_app = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "glide_studio.ui.main_window", fake)
    assert cli.main([]) == 0
    assert cli.main(["picture.png", "--fake-engine"]) == 0
    assert calls == [[], ["picture.png", "--fake-engine"]]


def test_missing_qt_is_a_clear_message_and_our_own_broken_import_is_not_hidden(monkeypatch, capsys):
    real_import = cli.importlib.import_module

    def no_qt(name):
        if name.startswith("glide_studio.ui"):
            raise ModuleNotFoundError("No module named 'PySide6'", name="PySide6")
        return real_import(name)

    monkeypatch.setattr(cli.importlib, "import_module", no_qt)
    assert cli.main([]) == cli.EXIT_RUNTIME
    assert "needs PySide6" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "glide_studio.ui.main_window", None)
    with pytest.raises(ModuleNotFoundError):
        cli.main([])


def test_bad_box_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inpaint", "--box", "1,2,3"])
    assert exit_info.value.code == 2
    assert "x,y,width,height" in capsys.readouterr().err


def test_output_paths():
    paths = cli_run.output_paths("out.png", "generate", 3, "a red circle", 1)
    assert [str(p) for p in paths] == ["out.png"]
    paths = cli_run.output_paths("runs/out.png", "generate", 3, "a red circle", 2)
    assert [str(p) for p in paths] == ["runs/out-0.png", "runs/out-1.png"]
    paths = cli_run.output_paths("{prompt}_{seed}_{candidate}.png", "inpaint", 7, "a red circle!", 2)
    assert [str(p) for p in paths] == ["a-red-circle_7_0.png", "a-red-circle_7_1.png"]
    assert str(cli_run.output_paths(None, "sdedit", 1, "", 1)[0]) == "glide-sdedit-1-0.png"
    with pytest.raises(cli_run.CliError, match=".png"):
        cli_run.output_paths("out.jpg", "generate", 1, "", 1)
    with pytest.raises(cli_run.CliError, match="not valid"):
        cli_run.output_paths("{colour}.png", "generate", 1, "", 1)


@pytest.fixture
def picture_files(tmp_path):
    picture = np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    mask = np.zeros((200, 300), dtype=np.uint8)
    mask[80:120, 200:260] = 255
    Image.fromarray(picture).save(tmp_path / "picture.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path / "picture.png", tmp_path / "mask.png", picture, mask


def test_inpaint_run_writes_pngs_that_repeat_to_the_same_pixels(tmp_path, fake_models, picture_files, capsys,
                                                                 user_data_dir):
    picture_path, mask_path, picture, mask = picture_files
    args = ["inpaint", "--image", str(picture_path), "--mask", str(mask_path), "--prompt", "a red circle"]
    args += ["--seed", "5", "--candidates", "2", "--steps", "7", "--device", "cpu", "--quiet"]
    assert cli.main([*args, "--output", str(tmp_path / "first-{candidate}.png")]) == 0
    written = [tmp_path / "first-0.png", tmp_path / "first-1.png"]
    assert capsys.readouterr().out.split() == [str(p) for p in written]
    first = [np.asarray(Image.open(p)) for p in written]
    assert first[0].shape == (200, 300, 3) and not np.array_equal(first[0], first[1])
    untouched = mask == 0
    assert np.array_equal(first[0][untouched], picture[untouched])

    meta = read_record(written[1]).record
    assert meta.candidate == 1 and meta.context.device == "cpu" and meta.context.precision == "fp32"
    recorded = encode(meta.request)
    assert (recorded["mode"], recorded["prompt"], recorded["seed"], recorded["steps"]) == (
        "inpaint",
        "a red circle",
        5,
        7,
    )
    assert recorded["batch"] == 2 and recorded["edit_box"] is not None  # the default box, recorded
    assert meta.inputs["image"].path == "picture.png"  # a name, never this machine's folders

    # Repeating candidate 1 gives candidate 1 (one picture), with the same record.
    assert cli.main(["repeat", str(written[1]), "--quiet", "--output", str(tmp_path / "again.png")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "again.png")]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), first[1])
    repeated = read_record(tmp_path / "again.png").record
    assert encode(repeated.request) == recorded and repeated.context == meta.context and repeated.candidate == 1

    changed = picture.copy()
    changed[0, 0] ^= 255
    Image.fromarray(changed).save(picture_path)
    shutil.rmtree(user_data_dir / "inputs")  # the inputs the run kept are gone too
    assert cli.main(["repeat", str(written[0]), "--quiet", "--output", str(tmp_path / "x.png")]) == cli.EXIT_INPUT
    assert "differs from the one the recorded run used" in capsys.readouterr().err


def test_from_png_with_overrides_changes_only_what_is_given(tmp_path, fake_models):
    first_png, second_png = tmp_path / "a.png", tmp_path / "b.png"
    assert cli.main(["generate", "--prompt", "a blue square", "--seed", "1", "-q", "-o", str(first_png)]) == 0
    args = ["generate", "--from-png", str(first_png), "--seed", "2", "-q", "-o", str(second_png)]
    assert cli.main(args) == 0
    first, second = (encode(read_record(path).record.request) for path in (first_png, second_png))
    assert second["seed"] == 2 and first["seed"] == 1
    assert {k: v for k, v in first.items() if k != "seed"} == {k: v for k, v in second.items() if k != "seed"}


def test_missing_and_broken_inputs_are_clear_errors(tmp_path, fake_models, picture_files, capsys):
    picture_path, mask_path, _, _ = picture_files
    assert cli.main(["inpaint", "--image", str(picture_path), "--prompt", "x", "-q"]) == cli.EXIT_USAGE
    assert "inpaint needs --mask" in capsys.readouterr().err
    junk = tmp_path / "junk.png"
    junk.write_text("not a picture")
    assert cli.main(["inpaint", "--image", str(junk), "--mask", str(mask_path), "-q"]) == cli.EXIT_INPUT
    assert "not an image file" in capsys.readouterr().err
    empty = tmp_path / "empty-mask.png"
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(empty)
    assert cli.main(["inpaint", "--image", str(picture_path), "--mask", str(empty), "-q"]) == cli.EXIT_INPUT
    assert "mask is empty" in capsys.readouterr().err
    assert cli.main(["generate", "--prompt", "x", "-q", "-o", str(tmp_path / "out.jpg")]) == cli.EXIT_USAGE
    assert "--output must name .png files" in capsys.readouterr().err
    assert fake_models == []  # nothing was loaded for runs that could not start


def test_guidance_option_reaches_the_request(tmp_path, fake_models, capsys):
    args = ["generate", "--prompt", "x", "--guidance", "clip", "-q", "-o", str(tmp_path / "g.png")]
    assert cli.main(args) == 0
    assert read_record(tmp_path / "g.png").record.request.guidance is Guidance.CLIP


@pytest.mark.parametrize("mode", ["generate", "inpaint"])
def test_real_pipeline_run_repeats_to_identical_pixels(tmp_path, picture_files, mode):
    picture_path, mask_path, picture, mask = picture_files
    args = [mode, "--prompt", "a red circle above a blue square", "--seed", "3", "--candidates", "2"]
    args += ["--steps", "3", "--upsample-steps", "2", "--device", "cpu", "-q"]
    if mode == "inpaint":
        args += ["--image", str(picture_path), "--mask", str(mask_path)]
    assert cli.main([*args, "-o", str(tmp_path / "first.png")]) == 0
    for candidate in range(2):
        again_path = tmp_path / f"again-{candidate}.png"
        assert cli.main(["repeat", str(tmp_path / f"first-{candidate}.png"), "-q", "-o", str(again_path)]) == 0
        first = np.asarray(Image.open(tmp_path / f"first-{candidate}.png"))
        again = np.asarray(Image.open(again_path))
        assert np.array_equal(first, again)
        if mode == "inpaint":
            assert first.shape == picture.shape
            assert np.array_equal(first[mask == 0], picture[mask == 0])


@pytest.fixture
def tiny_reference_models(reference_dir, monkeypatch):
    """OpenAI-format tiny random networks from the reference data, at small sizes, as the CLI's models."""
    import json

    from glide_studio.models import build_model, load_weights
    from glide_studio.pipelines.models import ModelSet

    def network(name):
        options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
        return load_weights(build_model(options), reference_dir / f"{name}.pt").eval()

    base, upsample = network("tiny-base-inpaint"), network("tiny-upsample-inpaint")
    model_set = ModelSet(base=base, upsample=upsample, base_size=16, upsample_size=32)
    monkeypatch.setattr(run_models, "load_model_set", lambda request, device, precision: model_set)


def test_tiny_reference_inpaint_repeats_to_identical_pixels(tmp_path, picture_files, tiny_reference_models):
    picture_path, mask_path, picture, mask = picture_files
    args = ["inpaint", "--image", str(picture_path), "--mask", str(mask_path), "--prompt", "a red circle"]
    args += ["--seed", "11", "--candidates", "2", "--steps", "3", "--upsample-steps", "2", "--device", "cpu"]
    assert cli.main([*args, "-q", "-o", str(tmp_path / "first.png")]) == 0
    assert cli.main(["repeat", str(tmp_path / "first-1.png"), "-q", "-o", str(tmp_path / "again.png")]) == 0
    first = [np.asarray(Image.open(tmp_path / f"first-{i}.png")) for i in range(2)]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), first[1])
    assert not np.array_equal(first[0], first[1])
    assert first[0].shape == picture.shape
    assert np.array_equal(first[0][mask == 0], picture[mask == 0])
    assert not np.array_equal(first[0][mask > 0], picture[mask > 0])


def test_a_full_disk_is_refused_before_any_model_is_loaded(tmp_path, fake_models, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    assert cli.main(["generate", "--prompt", "x", "-q", "-o", str(tmp_path / "out.png")]) == 2
    assert "MB free" in capsys.readouterr().err and fake_models == []
