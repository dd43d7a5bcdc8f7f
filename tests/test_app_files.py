"""History tree, project files, autosave recovery, parameters and picture files, without widgets."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from glide_studio.app.autosave import Autosaver
from glide_studio.app.controller import StudioController
from glide_studio.app.errors import ImageLoadError, ProjectError, StudioError
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.history import HistoryTree
from glide_studio.app.images import load_image, read_parameters, save_png
from glide_studio.app.params import GenerationParams, build_request
from glide_studio.app.project import load_project
from glide_studio.app.settings import Preferences
from glide_studio.app.starter import starter_scene
from glide_studio.pipelines.request import Mode


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
    first = history.add(_picture(1), "first", {"seed": 1})
    history.add(_picture(2), "second", {})
    history.go_to(root.id)
    branch = history.add(_picture(3), "branch", {})
    assert [node.id for node in history.children(root.id)] == [first.id, branch.id]
    assert [node.caption for node in history.path_to(branch.id)] == ["root", "branch"]
    assert history.current.id == branch.id
    assert history.node(first.id).thumbnail.shape[2] == 3
    with pytest.raises(KeyError):
        history.go_to(99)


def test_accepting_a_candidate_adds_a_history_node_with_its_parameters(qtbot, controller):
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 8))
    controller.set_params(GenerationParams(prompt="blue", steps=3, candidates=3, random_seed=False, seed=7))
    with qtbot.waitSignal(controller.run_finished, timeout=5000):
        controller.generate()
    assert controller.candidates.shape == (3, 24, 24, 3)
    controller.accept_candidate(2)
    node = controller.history.current
    assert node.parent_id == 1 and node.caption == "blue"
    assert node.parameters["seed"] == 7 and node.parameters["candidate"] == 2
    assert np.array_equal(controller.document.picture, node.image)
    assert not controller.document.has_mask() and controller.candidates is None


def test_generate_without_a_mask_explains_what_to_do(controller):
    controller.set_params(GenerationParams(mode=Mode.INPAINT))
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
    controller.history.add(_picture(50), "fifty", {"seed": 5})
    document.set_picture(_picture(50))
    params = GenerationParams(prompt="a green line", mode=Mode.SDEDIT, steps=11, strength=0.4)
    controller.set_params(params)
    path = tmp_path / "scene.glidestudio"
    controller.save_project(path)

    other = StudioController(FakeEngine(), _picture(200, 40), "other")
    try:
        with qtbot.waitSignal(other.params_changed):
            other.load_project(path)
        assert np.array_equal(other.document.picture, _picture(50))
        assert np.array_equal(other.document.mask_array(), mask)
        assert np.array_equal(other.document.sketch_array(), sketch)
        assert other.params == params
        assert [node.caption for node in other.history.nodes()] == ["start", "fifty"]
        assert other.history.current.caption == "fifty"
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


def test_autosave_leftover_is_offered_once_after_an_unclean_exit(qtbot, controller, tmp_path):
    first = Autosaver(tmp_path, controller.snapshot)
    assert first.claim_recovery() is None
    first.begin_session()
    first.mark_dirty()
    first.save_if_dirty()
    assert first.recovery_path.exists() and not first.dirty
    # No end_session(): the process "crashed".
    second = Autosaver(tmp_path, controller.snapshot)
    recovered = second.claim_recovery()
    assert recovered is not None and load_project(recovered).params == controller.params
    second.begin_session()
    second.end_session()
    assert Autosaver(tmp_path, controller.snapshot).claim_recovery() is None


def test_png_export_carries_parameters_that_read_back(tmp_path):
    params = GenerationParams(prompt="a red circle", steps=9, seed=42, random_seed=False, guidance_scale=4.5)
    path = tmp_path / "out.png"
    save_png(path, starter_scene(32), params.to_dict())
    assert np.array_equal(load_image(path), starter_scene(32))
    restored = GenerationParams.from_dict(read_parameters(path))
    assert restored == params


def test_corrupt_and_missing_pictures_raise_image_load_errors(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_image(corrupt)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    assert read_parameters(corrupt) is None


def test_parameters_are_tolerant_of_unknown_and_bad_values(tmp_path):
    params = GenerationParams.from_dict({"steps": "12", "mode": "bogus", "seed": "x", "new_field": 1})
    assert params.steps == 12 and params.mode == Mode.INPAINT and params.seed == 0
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    preferences = Preferences(settings)
    preferences.set_params(params.with_(prompt="kept"))
    assert Preferences(settings).params().prompt == "kept"


def test_requests_follow_the_mode(qapp):
    picture, mask, sketch = _picture(1), np.ones((24, 24), np.uint8), np.zeros((24, 24, 4), np.uint8)
    params = GenerationParams(candidates=3, model="glide", mode=Mode.GENERATE)
    generate = build_request(params, picture, mask, sketch, None, seed=5)
    assert generate.image is None and generate.mask is None and generate.batch == 3 and generate.seed == 5
    assert generate.base_model == "base"
    sdedit = build_request(params.with_(mode=Mode.SDEDIT, model="demo"), picture, mask, sketch, None, seed=5)
    assert sdedit.sketch is sketch and sdedit.mask is mask and sdedit.base_model == "demo-base-inpaint"
