"""IP-Adapter image prompts on tiny random components built here: an SD folder, an adapter in h94's safetensors
format with its CLIP image encoder beside it, loaded through the user's path (the run loader, the command line).
The reference changes the result, strength 0 is exactly the run without an adapter, unmasked pixels stay, seeds
repeat, cancel stops within a step, a broken reference is a clear error and a repeat restores the reference."""

from __future__ import annotations

import numpy as np
import pytest
import sd_requests as requests
import torch
from PIL import Image
from sd_image_helpers import ip_adapter_state, save_folder, save_ip_adapter
from sd_requests import HEIGHT, WIDTH, mask, picture

from glide_studio import cli
from glide_studio.pipelines.request import Mode, Request
from glide_studio.png_metadata import read_record
from glide_studio.runs.drain import drain
from glide_studio.runs.errors import ModelUnavailableError
from glide_studio.runs.models import load_sd_model_set
from glide_studio.sd import registry
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd-ip")
    folder = save_folder(root / "tiny-inpaint", seed=2)
    adapter = save_ip_adapter(root / "ip-adapter", load_model(f"sd:{folder}", "cpu", "fp32").unet, seed=4)
    return folder, adapter


@pytest.fixture(scope="module")
def adapted(files):
    """The model as the run loader leaves it after a run with a reference (the adapter installed)."""
    folder, adapter = files
    loaded = {}
    load_sd_model_set(sd_request(Mode.INPAINT, f"sd:{folder}", ip_adapter_image=reference(), ip_adapter=str(adapter)),
                      "cpu", "fp32", loaded=loaded)
    return next(iter(loaded.values()))


@pytest.fixture(scope="module")
def plain(files):
    return load_model(f"sd:{files[0]}", "cpu", "fp32")


def plain_unet(folder):
    return load_model(f"sd:{folder}", "cpu", "fp32").unet


def reference(seed=7, size=(60, 44)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def sd_request(mode: Mode, name: str, **changes) -> Request:
    return requests.sd_request(mode, name, **{"steps": 3, "seed": 5, "strength": 0.7, "scheduler": "Euler a",
                                              **changes})


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE])
def test_the_reference_steers_the_run_and_strength_zero_is_the_run_without_it(files, adapted, plain, mode):
    folder, adapter = files
    without = sd_request(mode, adapted.name)
    followed = without.with_(ip_adapter_image=reference(), ip_adapter=str(adapter), ip_adapter_scale=0.8)
    alone = drain(run(plain, without))
    steered = drain(run(adapted, followed))
    assert steered.shape == alone.shape == ((2, 32, 32, 3) if mode == Mode.GENERATE else (2, HEIGHT, WIDTH, 3))
    assert not np.array_equal(steered, alone)
    assert np.array_equal(drain(run(adapted, followed)), steered)  # same seed, same pixels
    other = drain(run(adapted, followed.with_(ip_adapter_image=reference(seed=8))))
    assert not np.array_equal(other, steered)  # another reference, another result
    assert not np.array_equal(drain(run(adapted, followed.with_(ip_adapter_scale=0.3))), steered)
    # strength 0, and a run without a reference on the model that has the adapter installed: bit for bit as without
    assert np.array_equal(drain(run(adapted, followed.with_(ip_adapter_scale=0.0))), alone)
    assert np.array_equal(drain(run(adapted, without)), alone)
    if mode != Mode.GENERATE:
        kept = mask() == 0
        assert np.array_equal(steered[:, kept], np.broadcast_to(picture()[kept], steered[:, kept].shape))


def test_cancel_stops_within_one_step(adapted, files):
    calls = []
    handle = adapted.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        request = sd_request(Mode.INPAINT, adapted.name, steps=6, ip_adapter_image=reference(),
                             ip_adapter=str(files[1]))
        stream = run(adapted, request)
        for step in stream:
            if step.index == 1:
                break
        stream.close()
    finally:
        handle.remove()
    assert len(calls) == 2


def test_adapters_that_cannot_be_used_are_refused_clearly(tmp_path, files):
    folder, adapter = files
    cases = {
        tmp_path / "adapter.bin": "pickled",
        tmp_path / "lonely" / "ip-adapter.safetensors": "image encoder beside it",
        tmp_path / "nothing.safetensors": "no IP-Adapter",
    }
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "ip-adapter.safetensors").write_bytes(adapter.read_bytes())
    from safetensors.torch import save_file

    state = ip_adapter_state(plain_unet(folder))
    other_kinds = {  # a Plus adapter's resampler instead of the base projection; a base one for a wider context
        "plus": ({**{key: value for key, value in state.items() if not key.startswith("image_proj.")},
                  "image_proj.latents": torch.zeros(1, 16, 16)}, "not a base IP-Adapter"),
        "wide": ({**state, "image_proj.proj.weight": torch.zeros(4 * 32, 8)}, "made for a UNet with 32-wide"),
    }
    for kind, (weights, words) in other_kinds.items():
        (tmp_path / kind).mkdir()
        save_file(weights, str(tmp_path / kind / "ip-adapter.safetensors"))
        (tmp_path / kind / "image_encoder").symlink_to(adapter.parent / "image_encoder")
        cases[tmp_path / kind / "ip-adapter.safetensors"] = words
    for path, words in cases.items():
        with pytest.raises(ModelUnavailableError, match=words):
            load_sd_model_set(sd_request(Mode.INPAINT, f"sd:{folder}", ip_adapter_image=reference(),
                                         ip_adapter=str(path)), "cpu", "fp32", loaded={})


def test_the_known_adapter_fetches_only_its_three_files(monkeypatch, tmp_path):
    from glide_studio.sd import hub, ip_adapter

    asked = []
    monkeypatch.setattr(hub, "fetch_files", lambda repo, patterns, **_: asked.append((repo, tuple(patterns))) or
                        tmp_path)
    weights, encoder = ip_adapter.resolve("ip-adapter-sd15")
    assert asked == [("h94/IP-Adapter", ("models/ip-adapter_sd15.safetensors", "models/image_encoder/config.json",
                                         "models/image_encoder/model.safetensors"))]
    assert weights == tmp_path / "models" / "ip-adapter_sd15.safetensors" and encoder.name == "image_encoder"
    known = registry.known_ip_adapter("ip-adapter-sd15")
    assert known.size_gb > 1 and "Apache" in known.licence


@pytest.fixture
def cli_inputs(tmp_path):
    paths = {name: tmp_path / f"{name}.png" for name in ("picture", "mask", "reference")}
    for name, array in zip(paths, (picture(), mask(), reference()), strict=True):
        Image.fromarray(array).save(paths[name])
    return paths


def _args(files, paths, out, *extra):
    return ["inpaint", "--model", f"sd:{files[0]}", "--image", str(paths["picture"]), "--mask", str(paths["mask"]),
            "--prompt", "a cat", "--steps", "2", "--seed", "3", "--device", "cpu", "--precision", "fp32", "-q",
            "-o", str(out), *extra]


def test_the_command_line_runs_records_and_repeats_the_reference(tmp_path, files, cli_inputs, user_data_dir):
    reference_flags = ["--ip-adapter-image", str(cli_inputs["reference"]), "--ip-adapter-scale", "0.8",
                       "--ip-adapter", str(files[1])]
    assert cli.main(_args(files, cli_inputs, tmp_path / "plain.png")) == 0
    assert cli.main(_args(files, cli_inputs, tmp_path / "steered.png", *reference_flags)) == 0
    plain, steered = (np.asarray(Image.open(tmp_path / name)) for name in ("plain.png", "steered.png"))
    assert not np.array_equal(plain, steered)
    record = read_record(tmp_path / "steered.png").record
    assert record.request.ip_adapter_scale == 0.8 and record.request.ip_adapter == str(files[1])
    assert record.inputs["ip_adapter_image"].shape == reference().shape
    text = Image.open(tmp_path / "steered.png").text["parameters"]
    assert "IP-Adapter scale: 0.8" in text
    assert "IP-Adapter" not in Image.open(tmp_path / "plain.png").text["parameters"]
    # the reference file is gone: the repeat takes it from the input store, by its digest
    cli_inputs["reference"].unlink()
    assert cli.main(["repeat", str(tmp_path / "steered.png"), "-q", "-o", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), steered)


def test_the_command_line_refuses_a_broken_reference_clearly(tmp_path, files, cli_inputs, capsys, user_data_dir):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    status = cli.main(_args(files, cli_inputs, tmp_path / "x.png", "--ip-adapter-image", str(broken)))
    error = capsys.readouterr().err
    assert status == cli.EXIT_INPUT and "broken.png" in error and "Traceback" not in error
    assert not (tmp_path / "x.png").exists()
    status = cli.main(_args(files, cli_inputs, tmp_path / "x.png", "--ip-adapter-scale", "0.5"))
    error = capsys.readouterr().err
    assert status == cli.EXIT_USAGE and "--ip-adapter-scale has no effect" in error and "Traceback" not in error


# -- in the real window ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, plain):
    """GLIDE_STUDIO_SD_MODELS as a user lays it out: the model's folder, and an adapter with its encoder in a
    subfolder of its own."""
    root = tmp_path_factory.mktemp("user-sd-models")
    save_folder(root / "my-inpainter", seed=2)
    save_ip_adapter(root / "ip-adapter", plain.unet, seed=4)
    return root


def test_the_window_picks_a_reference_from_the_box_runs_with_it_and_a_replay_restores_it(
        qtbot, tmp_path, monkeypatch, models_dir, user_data_dir):
    from PySide6.QtWidgets import QComboBox
    from window_helpers import open_window

    from glide_studio.app.controller import StudioController
    from glide_studio.app.engine import PipelineEngine
    from glide_studio.app.starter import starter_scene
    from glide_studio.pipelines.request import EditBox
    from glide_studio.sd.registry import MODELS_PATH_VARIABLE

    monkeypatch.setenv(MODELS_PATH_VARIABLE, str(models_dir))
    window = open_window(qtbot, tmp_path, PipelineEngine(precision="fp32"), starter_scene(64))
    controls, controller = window.controls, window.controller
    picker = controls.reference
    adapter = str(models_dir / "ip-adapter" / "ip-adapter_tiny.safetensors")
    assert [picker.adapter.itemData(index) for index in range(picker.adapter.count())] == ["ip-adapter-sd15", adapter]
    assert not picker.choose.isEnabled()  # the demo model reads no reference
    assert not window.image_prompts.reference_from_box_action.isEnabled()

    model: QComboBox = controls.model
    model.setCurrentIndex(model.findData(f"sd:{models_dir / 'my-inpainter'}"))
    picker.adapter.setCurrentIndex(picker.adapter.findData(adapter))
    controls.random_seed.setChecked(False)
    controls.fields.widgets["steps"].setValue(2)
    controls.fields.widgets["batch"].setValue(1)
    assert picker.choose.isEnabled() and picker.from_box.isEnabled()
    assert not picker.strength.isEnabled()  # nothing to follow yet
    controller.document.set_edit_box(EditBox(8, 8, 32, 32))
    picker.from_box.click()
    boxed = controller.document.picture[8:40, 8:40]
    assert np.array_equal(controller.reference, boxed)
    assert picker.strength.isEnabled() and not picker.preview.pixmap().isNull() and picker.clear.isEnabled()
    picker.strength.setValue(0.9)

    mask = np.zeros((64, 64), np.uint8)
    mask[12:36, 12:36] = 255  # inside the box
    controller.document.set_mask_array(mask)
    before = controller.document.picture.copy()
    with qtbot.waitSignal(controller.run_finished, timeout=120_000) as finished:
        window.run()
    result = finished.args[0]
    assert result.record.request.ip_adapter == adapter and result.record.request.ip_adapter_scale == 0.9
    assert np.array_equal(result.record.request.ip_adapter_image, boxed)
    from glide_studio.runs.inputs import InputStore

    kept_reference = InputStore().get("ip_adapter_image", result.record.inputs["ip_adapter_image"].sha256)
    assert np.array_equal(kept_reference, boxed)  # kept by digest with the run's other inputs
    kept = mask == 0
    assert np.array_equal(result.images[0][kept], before[kept])

    rebuilt = StudioController(PipelineEngine(precision="fp32"), np.zeros((8, 8, 3), np.uint8))
    try:
        rebuilt.replay(window.session.journal)
        assert np.array_equal(rebuilt.reference, boxed)
        assert np.array_equal(rebuilt.run_settings.request.ip_adapter_image, boxed)
        assert rebuilt.run_settings.to_json() == controller.run_settings.to_json()
        assert rebuilt.runs[0].record.inputs == result.record.inputs  # the run names its reference by digest
    finally:
        assert rebuilt.shutdown()
    picker.clear.click()
    assert controller.reference is None and not picker.strength.isEnabled()
    window.close()


def test_sd_models_lists_the_adapter_and_sd_download_fetches_only_its_files(capsys, monkeypatch, tmp_path):
    from glide_studio.sd import hub

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert cli.main(["sd-models"]) == 0
    listed = capsys.readouterr().out
    assert "ip-adapter-sd15" in listed and "h94/IP-Adapter" in listed and "licence: Apache 2.0" in listed
    assert "not downloaded" in listed.split("ip-adapter-sd15")[1].splitlines()[0]
    asked = []
    monkeypatch.setattr(hub, "fetch_files", lambda repo, patterns, **_: asked.append((repo, tuple(patterns))) or
                        tmp_path)
    assert cli.main(["sd-download", "ip-adapter-sd15"]) == 0
    assert asked == [("h94/IP-Adapter", registry.known_ip_adapter("ip-adapter-sd15").files)]


def test_a_run_with_a_reference_paused_and_resumed_is_the_uninterrupted_one(adapted, files):
    request = sd_request(Mode.SDEDIT, adapted.name, steps=4, ip_adapter_image=reference(), ip_adapter=str(files[1]))
    steps = []
    whole = drain(run(adapted, request), steps.append)
    assert np.array_equal(drain(run(adapted, request, resume=steps[1].state)), whole)


def test_bf16_reads_the_reference_in_bf16_and_keeps_the_unmasked_pixels(files):
    folder, adapter = files
    request = sd_request(Mode.INPAINT, f"sd:{folder}", ip_adapter_image=reference(), ip_adapter=str(adapter))
    low = load_sd_model_set(request, "cpu", "bf16", loaded={})
    assert low.ip_adapter.image_encoder.dtype == torch.bfloat16 and low.unet.dtype == torch.bfloat16
    results = drain(run(low, request))
    kept = mask() == 0
    assert np.array_equal(results[:, kept], np.broadcast_to(picture()[kept], results[:, kept].shape))
