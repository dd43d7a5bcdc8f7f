"""The one run record: every Request field survives the GUI controls, an exported PNG and a reopening; every field
has a command-line flag; `repeat` on a GUI export gives its pixels again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QComboBox, QLineEdit, QMessageBox
from window_helpers import open_window

from glide_studio import cli
from glide_studio.app.engine import PipelineEngine
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.run_settings import RunSettings
from glide_studio.app.starter import starter_scene
from glide_studio.diffusion.samplers import Sampler
from glide_studio.pipelines.request import EditBox, Guidance, Mode, Region, Request, Scheduler
from glide_studio.png_metadata import read_record
from glide_studio.runs.codec import RecordError, decode, encode, spec
from glide_studio.runs.record import RunContext, RunRecord, decode_record
from glide_studio.ui.main_window import MainWindow

# A value other than the default for every field of Request that is not a picture.
TARGET = Request(
    mode=Mode.SDEDIT, prompt="a purple triangle left of a green circle", steps=7, sampler=Sampler.DDIM,
    guidance_scale=4.5, seed=1234, strength=0.55, eta=0.3, guidance=Guidance.CLIP, batch=3,
    base_model="base-inpaint", upsample_model="upsample-inpaint", upsample_steps=9, edit_box=EditBox(4, 6, 40, 40),
    negative_prompt="blurry, text", scheduler=Scheduler.EULER_A, mask_grow=5, mask_feather=6,
    reuse_interval=3, guidance_stop=0.25, guidance_start=0.9, upsample_reuse_interval=2,
    reuse_stop=0.45, reuse_start=0.85, upsample_reuse_stop=0.55, ip_adapter_scale=0.8,
    ip_adapter="my-adapter.safetensors",
    regions=(Region(2, 3, 20, 24, "a red ball"), Region(30, 8, 60, 40, "a blue cube, shiny")), grounding_share=0.6,
    upsample_context=40, upsample_strength=0.65,
)
# The same run as a person types it on the command line, flag by flag.
TARGET_FLAGS = {
    "mode": [], "prompt": ["--prompt", TARGET.prompt], "steps": ["--steps", "7"], "sampler": ["--sampler", "ddim"],
    "guidance_scale": ["--guidance-scale", "4.5"], "seed": ["--seed", "1234"], "strength": ["--strength", "0.55"],
    "eta": ["--eta", "0.3"], "guidance": ["--guidance", "clip"], "batch": ["--candidates", "3"],
    "base_model": ["--model", "base-inpaint"], "upsample_model": ["--upsample-model", "upsample-inpaint"],
    "upsample_steps": ["--upsample-steps", "9"], "edit_box": ["--box", "4,6,40,40"],
    "negative_prompt": ["--negative-prompt", "blurry, text"], "scheduler": ["--scheduler", "Euler a"],
    "mask_grow": ["--mask-grow", "5"], "mask_feather": ["--mask-feather", "6"],
    "reuse_interval": ["--reuse-interval", "3"], "guidance_stop": ["--guidance-stop", "0.25"],
    "guidance_start": ["--guidance-start", "0.9"], "upsample_reuse_interval": ["--upsample-reuse-interval", "2"],
    "reuse_stop": ["--reuse-stop", "0.45"], "reuse_start": ["--reuse-start", "0.85"],
    "upsample_reuse_stop": ["--upsample-reuse-stop", "0.55"],
    "ip_adapter_scale": ["--ip-adapter-scale", "0.8"], "ip_adapter": ["--ip-adapter", "my-adapter.safetensors"],
    "regions": ["--region", "2,3,20,24=a red ball", "--region", "30,8,60,40=a blue cube, shiny"],
    "grounding_share": ["--grounding-share", "0.6"],
    "upsample_context": ["--upsample-context", "40"], "upsample_strength": ["--upsample-strength", "0.65"],
}
RECORDED_FIELDS = [field for field in dataclasses.fields(Request) if not field.metadata.get("pixels")]


def test_the_target_changes_every_recorded_field():
    """A field added to Request without a value here fails this test, and so joins the round trips below."""
    defaults = Request()
    unchanged = [field.name for field in RECORDED_FIELDS
                 if getattr(TARGET, field.name) == getattr(defaults, field.name)]
    assert unchanged == []
    assert sorted(TARGET_FLAGS) == sorted(field.name for field in RECORDED_FIELDS)


def _layers(size: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((size, size), np.uint8)
    mask[10:40, 12:44] = 255
    sketch = np.zeros((size, size, 4), np.uint8)
    sketch[18:30, 20:36] = (200, 40, 200, 255)
    return mask, sketch


def _window(qtbot, tmp_path, engine) -> MainWindow:
    window = open_window(qtbot, tmp_path, engine, starter_scene(64), show=False)
    return window


def _run(qtbot, window: MainWindow):
    mask, sketch = _layers(window.controller.document.width)
    window.controller.document.set_mask_array(mask)
    window.controller.document.set_sketch_array(sketch)
    with qtbot.waitSignal(window.controller.run_finished, timeout=20000) as finished:
        window.run()
    return finished.args[0]


def _answer(parent, title, *args, **kwargs):
    """Yes to restoring a PNG's run, no to saving the project on close."""
    return QMessageBox.StandardButton.Discard if "Unsaved" in title else QMessageBox.StandardButton.Yes


def _set_control(widget, value) -> None:
    """As a person would: pick the item that shows the value, or type the number."""
    if isinstance(widget, QComboBox):
        shown = getattr(value, "label", str(value.value))
        assert widget.findText(shown) >= 0, f"no item shows {shown!r}"
        widget.setCurrentIndex(widget.findText(shown))
    elif isinstance(widget, QLineEdit):
        widget.setText(value)
    else:
        widget.setValue(value)


def test_every_field_set_in_the_gui_survives_an_exported_png_reopened_in_the_gui(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", _answer)
    engine = FakeEngine(step_delay=0.0)
    window = _window(qtbot, tmp_path / "first", engine)
    controls = window.controls
    controls.caption.setText(TARGET.prompt)
    controls.mode.setCurrentIndex(controls.mode.findData(TARGET.mode.value))
    controls.model.setCurrentIndex(controls.model.findData("glide"))
    controls.random_seed.setChecked(False)
    for name, widget in controls.fields.widgets.items():
        _set_control(widget, getattr(TARGET, name))
    window.controller.document.set_edit_box(TARGET.edit_box)  # what dragging the box on the canvas does
    window.regions.apply(TARGET.regions, None)  # what drawing them with the Regions tool does
    controls.reference.show_adapter(TARGET.ip_adapter)  # the reference picker's adapter list
    ran = _run(qtbot, window).request
    assert ran == TARGET
    window.controller.accept_candidate(2)
    exported = tmp_path / "export.png"
    assert window.files.export_png(exported)
    window.close()

    record = read_record(exported).record
    assert record.request == TARGET and record.candidate == 2
    assert set(record.inputs) == {"image", "mask", "sketch"} and record.context.precision == "fp32"

    reopened = _window(qtbot, tmp_path / "second", FakeEngine(step_delay=0.0))
    try:
        assert reopened.files.open_path(exported)
        assert _run(qtbot, reopened).request == TARGET
    finally:
        reopened.close()


def test_every_field_has_a_command_line_flag_that_reaches_the_record(tmp_path, fake_models):
    mask, sketch = _layers(64)
    Image.fromarray(starter_scene(64)).save(tmp_path / "picture.png")
    Image.fromarray(sketch).save(tmp_path / "sketch.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["sdedit", "--image", str(tmp_path / "picture.png"), "--sketch", str(tmp_path / "sketch.png"),
            "--mask", str(tmp_path / "mask.png"), "-q", "-o", str(tmp_path / "out.png")]
    # The Stable Diffusion section has no effect on this GLIDE run: the command line refuses its flags here (they
    # reach an SD run's record in test_sd_fronts and test_sd_ip_adapter), and the record keeps their defaults.
    sd_run = TARGET.with_(base_model="sd:any-model", ip_adapter_image=np.zeros((8, 8, 3), np.uint8))
    sd_only = [name for name in TARGET_FLAGS if not spec(Request, name).relevant(TARGET)]
    assert {"negative_prompt", "scheduler", "ip_adapter_scale", "ip_adapter", "regions", "grounding_share"} <= set(
        sd_only)
    assert all(spec(Request, name).relevant(sd_run) for name in sd_only)
    for name in sd_only:
        assert cli.main(args + TARGET_FLAGS["base_model"] + TARGET_FLAGS[name]) != 0
    flags = [part for name, flag in TARGET_FLAGS.items() if name not in sd_only for part in flag]
    assert cli.main(args + flags) == 0
    defaults = Request()
    assert read_record(tmp_path / "out-0.png").record.request == TARGET.with_(
        **{name: getattr(defaults, name) for name in sd_only})


def test_the_codec_refuses_wrong_types_and_reads_its_own_json():
    assert decode(Request, encode(TARGET)) == TARGET
    with pytest.raises(RecordError, match="sampler: unknown value 'euler'"):
        decode(Request, {"sampler": "euler"})
    with pytest.raises(RecordError, match="batch should be a whole number"):
        decode(Request, {"batch": True})
    assert decode(Request, {"candidates": 4}).batch == 4  # a field is also found under its flag's name
    assert spec(Request, "edit_box").optional and spec(Request, "steps").kind is int
    assert RunSettings.from_json(RunSettings(TARGET).to_json()).request == TARGET


def test_a_record_from_before_a_lever_existed_reads_as_those_runs_went():
    """A journal written before the speed levers lacks their fields: its runs ran the exact path, and read back
    they must say so (a paused run resumes only on its own chain), while settings without them take the defaults."""
    levers = [found.name for found in dataclasses.fields(Request) if "unrecorded" in found.metadata]
    assert {"upsample_context", "upsample_strength", "reuse_interval", "guidance_stop"} <= set(levers)
    old = encode(RunRecord.of(TARGET, RunContext.here("cpu", "fp32")))
    for name in levers:
        del old["request"][name]
    request = decode_record(old).request
    assert {name: getattr(request, name) for name in levers} == {
        found.name: found.metadata["unrecorded"] for found in dataclasses.fields(Request) if found.name in levers}
    assert request.with_(**{name: getattr(TARGET, name) for name in levers}) == TARGET
    settings = decode(Request, old["request"])
    assert all(getattr(settings, name) == getattr(Request(), name) for name in levers)


def test_repeat_on_a_gui_export_gives_the_same_pixels(qtbot, tmp_path, monkeypatch):
    """The demo model through the editor's own engine (its base stage: the upsampler's repeats are the CLI tests'),
    exported; then `glide-studio repeat` with networks it loads itself."""
    monkeypatch.setattr(QMessageBox, "question", _answer)
    window = _window(qtbot, tmp_path, PipelineEngine())
    settings = RunSettings(Request(mode=Mode.INPAINT, prompt="a red circle", steps=3, upsample_model=None, batch=2,
                                   seed=5), random_seed=False)
    window.controller.set_run_settings(settings, announce=True)
    window.controller.document.set_mask_array(_layers(64)[0])
    with qtbot.waitSignal(window.controller.run_finished, timeout=60000):
        window.run()
    window.controller.accept_candidate(1)
    exported = tmp_path / "export.png"
    assert window.files.export_png(exported)
    window.close()

    assert cli.main(["repeat", str(exported), "-q", "-o", str(tmp_path / "again.png")]) == 0
    again = np.asarray(Image.open(tmp_path / "again.png"))
    assert np.array_equal(again, np.asarray(Image.open(exported)))
    assert read_record(tmp_path / "again.png").record.request == read_record(exported).record.request


def test_inputs_are_kept_by_digest_and_a_tampered_copy_is_not_trusted(tmp_path):
    from glide_studio.runs.inputs import InputStore
    from glide_studio.runs.record import array_digest

    store = InputStore(tmp_path)
    mask, sketch = _layers(64)
    digests = {name: store.put(name, array) for name, array in (("mask", mask > 0), ("sketch", sketch))}
    assert digests["mask"] == array_digest(mask, "mask")  # booleans and 0/255 are the same mask
    assert np.array_equal(store.get("mask", digests["mask"]) != 0, mask != 0)
    assert np.array_equal(store.get("sketch", digests["sketch"]), sketch)
    assert store.put("mask", mask) == digests["mask"] and len(list(tmp_path.iterdir())) == 2
    Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(tmp_path / f"{digests['sketch']}.png")
    assert store.get("sketch", digests["sketch"]) is None
    assert store.get("image", "0" * 64) is None


def _recorded_png(tmp_path, context) -> str:
    from glide_studio.png_metadata import write_png
    from glide_studio.runs.record import RunRecord

    path = tmp_path / "recorded.png"
    write_png(path, starter_scene(64), RunRecord(Request(mode=Mode.GENERATE, upsample_model=None), context))
    return str(path)


def test_repeat_says_when_the_recorded_device_or_precision_cannot_give_the_same_pixels(
        tmp_path, fake_models, monkeypatch, capsys):
    import torch

    from glide_studio.models import precision
    from glide_studio.runs.record import RunContext

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda_run = _recorded_png(tmp_path, RunContext("cuda", "fp16"))
    # This machine cannot do what the record did: a runtime failure (4), told before any model loads.
    assert cli.main(["repeat", cuda_run, "-q", "-o", str(tmp_path / "a.png")]) == cli.EXIT_RUNTIME
    assert "no CUDA device" in capsys.readouterr().err and fake_models == []
    assert cli.main(["repeat", cuda_run, "--device", "cpu", "--precision", "fp32", "-q",
                     "-o", str(tmp_path / "a.png")]) == 0  # asked for explicitly: it runs

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    bf16_run = _recorded_png(tmp_path, RunContext("cpu", "bf16"))
    assert cli.main(["repeat", bf16_run, "-q", "-o", str(tmp_path / "b.png")]) == cli.EXIT_RUNTIME
    assert "no native bf16" in capsys.readouterr().err
    assert cli.main(["repeat", _recorded_png(tmp_path, RunContext("cpu", "fp32")), "-q",
                     "-o", str(tmp_path / "c.png")]) == 0
    assert fake_models[-1][2:] == ("cpu", "fp32")  # the recorded precision, not auto
