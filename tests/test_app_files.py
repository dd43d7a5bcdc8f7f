"""History tree, project files, run settings and picture files, without widgets."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from glide_studio.app.controller import StudioController
from glide_studio.app.errors import ImageLoadError, ProjectError, StudioError
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.history import HistoryTree
from glide_studio.app.images import load_image
from glide_studio.app.project import load_project
from glide_studio.app.run_settings import RunSettings, run_request
from glide_studio.app.settings import Preferences
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.png_metadata import read_record
from glide_studio.runs.record import RunContext, RunRecord


def _settings(**request_fields) -> RunSettings:
    return RunSettings(Request(**request_fields), random_seed=False)


def _picture(value: int, size: int = 24) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


@pytest.fixture
def controller(qtbot):
    controller = StudioController(FakeEngine(step_delay=0.0), _picture(10), "start", min_interval=0.0)
    yield controller
    assert controller.shutdown(5000)


def test_history_is_a_tree_and_editing_an_older_node_branches(qapp):
    history = HistoryTree()
    root = history.start(_picture(0), "root")
    first = history.add(_picture(1), "first", RunRecord(Request(seed=1)))
    history.add(_picture(2), "second", None)
    history.go_to(root.id)
    branch = history.add(_picture(3), "branch", None)
    assert [node.id for node in history.children(root.id)] == [first.id, branch.id]
    assert [node.caption for node in history.path_to(branch.id)] == ["root", "branch"]
    assert history.current.id == branch.id
    assert history.node(first.id).thumbnail.shape[2] == 3
    with pytest.raises(KeyError):
        history.go_to(99)


def test_accepting_a_candidate_adds_a_history_node_with_its_parameters(qtbot, controller):
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 8))
    controller.set_run_settings(_settings(prompt="blue", steps=3, batch=3, seed=7))
    with qtbot.waitSignal(controller.run_finished, timeout=5000):
        controller.generate()
    assert controller.candidates.shape == (3, 24, 24, 3)
    controller.accept_candidate(2)
    node = controller.history.current
    assert node.parent_id == 1 and node.caption == "blue"
    assert node.record.request.seed == 7 and node.record.candidate == 2
    assert node.record.context == RunContext("cpu", "fp32") and node.record.inputs["mask"].shape == (24, 24)
    assert np.array_equal(controller.document.picture, node.image)
    assert controller.document.has_mask() and controller.candidates is None  # the mask stays for a re-roll
    controller.document.undo_stack.undo()
    assert np.array_equal(controller.document.picture, _picture(10)) and controller.history.current.id == 1
    controller.document.undo_stack.redo()
    assert np.array_equal(controller.document.picture, node.image) and controller.history.current.id == node.id
    assert len(controller.history) == 2 and len(controller.runs) == 1  # redo revisits the node, adds none


def test_generate_without_a_mask_explains_what_to_do(controller):
    controller.set_run_settings(_settings(mode=Mode.INPAINT))
    with pytest.raises(StudioError, match="Paint a mask"):
        controller.generate()


def test_project_round_trip_keeps_picture_layers_history_and_parameters(qtbot, controller, tmp_path):
    document = controller.document
    mask = np.zeros((24, 24), np.uint8)
    mask[2:9, 3:12] = 255
    document.set_mask_array(mask)
    sketch = np.zeros((24, 24, 4), np.uint8)
    sketch[5:7, 5:20] = (10, 200, 30, 255)
    document.set_sketch_array(sketch)
    made = RunRecord.of(Request(mode=Mode.SDEDIT, seed=5, image=_picture(10)), RunContext("cpu", "bf16"), 1)
    controller.history.add(_picture(50), "fifty", made)
    document.set_picture(_picture(50))
    document.set_edit_box(EditBox(1, 2, 20, 20))
    settings = _settings(prompt="a green line", mode=Mode.SDEDIT, steps=11, strength=0.4)
    controller.set_run_settings(settings)
    path = tmp_path / "scene.glidestudio"
    controller.save_project(path)

    other = StudioController(FakeEngine(), _picture(200, 40), "other")
    try:
        with qtbot.waitSignal(other.run_settings_changed):
            other.load_project(path)
        assert np.array_equal(other.document.picture, _picture(50))
        assert np.array_equal(other.document.mask_array(), mask)
        assert np.array_equal(other.document.sketch_array(), sketch)
        assert other.run_settings == settings
        assert [node.caption for node in other.history.nodes()] == ["start", "fifty"]
        assert other.history.current.caption == "fifty" and other.history.current.record == made
        assert other.document.edit_box == EditBox(1, 2, 20, 20) and not other.document.box_is_automatic
    finally:
        assert other.shutdown(5000)


def test_damaged_projects_raise_project_errors(tmp_path):
    not_zip = tmp_path / "junk.glidestudio"
    not_zip.write_bytes(b"definitely not a zip")
    with pytest.raises(ProjectError, match="damaged"):
        load_project(not_zip)
    missing_parts = tmp_path / "partial.glidestudio"
    with zipfile.ZipFile(missing_parts, "w") as archive:
        archive.writestr("project.json", '{"format": "glide-studio-project", "version": 1}')
    with pytest.raises(ProjectError):
        load_project(missing_parts)
    with pytest.raises(ProjectError, match="does not exist"):
        load_project(tmp_path / "nowhere.glidestudio")


def test_png_export_carries_the_run_that_made_the_picture(qtbot, controller, tmp_path):
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 8))
    controller.set_run_settings(_settings(prompt="a red circle", steps=4, seed=42, guidance_scale=4.5))
    with qtbot.waitSignal(controller.run_finished, timeout=5000):
        controller.generate()
    controller.accept_candidate(0)
    path = tmp_path / "out.png"
    controller.export_png(path)
    assert np.array_equal(load_image(path), controller.document.picture)
    record = read_record(path).record
    assert record == controller.history.current.record
    assert record.request.guidance_scale == 4.5 and record.request.edit_box is not None


def test_corrupt_and_missing_pictures_raise_image_load_errors(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_image(corrupt)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_settings_are_tolerant_of_unknown_and_bad_values(tmp_path):
    settings = RunSettings.from_json({"request": {"steps": 12, "mode": "bogus", "seed": "x", "new_field": 1}})
    assert settings.request.steps == 12 and settings.request.mode == Mode.INPAINT and settings.request.seed == 0
    assert RunSettings.from_json("junk") == RunSettings()
    preferences = Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    preferences.set_run_settings(settings.with_request(prompt="kept"))
    assert Preferences(preferences.settings).run_settings().request.prompt == "kept"


def test_settings_saved_before_the_run_record_still_read():
    old = {"prompt": "p", "mode": "generate", "steps": 9, "candidates": 3, "model": "glide", "upsample": False,
           "random_seed": False, "device": "cpu", "sampler": "ddim"}
    settings = RunSettings.from_json(old)
    assert settings.request == Request(prompt="p", mode=Mode.GENERATE, steps=9, batch=3, base_model="base",
                                       upsample_model=None, sampler="ddim")
    assert not settings.random_seed and settings.family == "glide"


def test_requests_follow_the_mode(qapp):
    picture, mask, sketch = _picture(1), np.ones((24, 24), np.uint8), np.zeros((24, 24, 4), np.uint8)
    settings = RunSettings(Request(batch=3)).with_models("glide", Mode.GENERATE)
    generate = run_request(settings, picture, mask, sketch, None, seed=5)
    assert generate.image is picture and generate.mask is None and generate.sketch is None
    assert generate.batch == 3 and generate.seed == 5 and generate.base_model == "base"
    assert generate.edit_box is None  # the whole picture
    sdedit = run_request(settings.with_models("demo", Mode.SDEDIT), picture, mask, sketch, None, seed=5)
    assert sdedit.sketch is sketch and sdedit.mask is mask and sdedit.base_model == "demo-base-inpaint"
    assert sdedit.edit_box == EditBox(0, 0, 24, 24)  # the default box around the mask, as the CLI places it


def test_a_foreign_a1111_png_restores_what_applies_and_says_what_it_could_not(controller, tmp_path):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle on a hill\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 42, "
                                "Size: 24x24, Model: sd15")
    path = tmp_path / "foreign.png"
    Image.new("RGB", (24, 24)).save(path, pnginfo=info)
    before = controller.run_settings.request.base_model
    record = controller.open_image(path)
    kept = controller.restore_run(record.request)
    restored = controller.run_settings.request
    assert (restored.prompt, restored.steps, restored.seed, restored.guidance_scale) == ("a castle on a hill", 30, 42,
                                                                                          7.0)
    assert restored.base_model == before  # "sd15" is no model here: the next run still has one
    assert kept == [f"the model 'sd15' is not one this editor has ({before} kept)"]
