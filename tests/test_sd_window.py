"""Stable Diffusion in the real window: the user's model in the picker (the sd extra installed), its own settings
enabled and GLIDE's greyed out, an inpaint run through the editor's engine that keeps every unmasked pixel and
previews every step; without the extra, the picker says how to install it."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QComboBox
from sd_helpers import save_folder
from window_helpers import open_window, run_to_the_end

from glide_studio.app.engine import PipelineEngine
from glide_studio.app.starter import starter_scene
from glide_studio.pipelines.request import Scheduler
from glide_studio.sd.registry import MODELS_PATH_VARIABLE


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-sd-models")
    save_folder(root / "my-inpainter", seed=2)
    return root


def _pick(combo: QComboBox, data) -> None:
    index = combo.findData(data)
    assert index >= 0, [combo.itemData(i) for i in range(combo.count())]
    combo.setCurrentIndex(index)


def test_the_users_sd_model_is_in_the_picker_and_inpaints_in_the_window(qtbot, tmp_path, monkeypatch, models_dir,
                                                                       capfd):
    monkeypatch.setenv(MODELS_PATH_VARIABLE, str(models_dir))
    name = f"sd:{models_dir / 'my-inpainter'}"
    window = open_window(qtbot, tmp_path, PipelineEngine(precision="fp32"), starter_scene(64))
    controls = window.controls
    labels = [controls.model.itemText(index) for index in range(controls.model.count())]
    assert "SD · my-inpainter" in labels and any(label.startswith("SD · sd15-inpainting") for label in labels)
    _pick(controls.model, name)
    controls.random_seed.setChecked(False)
    widgets = controls.fields.widgets
    widgets["steps"].setValue(3)
    widgets["batch"].setValue(1)
    widgets["negative_prompt"].setText("blurry")
    _pick(widgets["scheduler"], Scheduler.DDIM)
    controls.caption.setText("a red circle")
    assert widgets["scheduler"].isEnabled() and widgets["negative_prompt"].isEnabled() and widgets["eta"].isEnabled()
    assert not widgets["sampler"].isEnabled() and not controls.upsample.isEnabled()

    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 20:48] = 255
    window.controller.document.set_mask_array(mask)
    before = window.controller.document.picture.copy()
    result, steps = run_to_the_end(qtbot, window)
    request = result.record.request
    assert request.base_model == name and request.scheduler == Scheduler.DDIM and request.negative_prompt == "blurry"
    assert request.upsample_model is None and result.record.context.model_hash
    image = result.images[0]
    assert image.shape == (64, 64, 3) and steps == [0, 1, 2]
    kept = mask == 0
    assert np.array_equal(image[kept], before[kept]) and not np.array_equal(image[~kept], before[~kept])
    window.close()
    assert "Traceback" not in capfd.readouterr().err  # nothing after the run (the candidates' ranking) failed


def test_without_the_sd_extra_the_picker_says_how_to_install_it(qtbot, tmp_path, monkeypatch):
    from glide_studio import sd

    monkeypatch.setattr(sd, "available", lambda: False)
    window = open_window(qtbot, tmp_path, PipelineEngine(), starter_scene(64), show=False)
    combo = window.controls.model
    index = combo.findData("sd")
    assert index >= 0 and 'install the sd extra: pip install "glide-studio[sd]"' in combo.itemText(index)
    assert not combo.model().item(index).isEnabled()
    assert [combo.itemData(i) for i in range(combo.count())][:2] == ["demo", "glide"]  # the app as it was
    window.close()


def test_pausing_an_sd_run_in_the_editor_and_resuming_equals_never_pausing(qtbot, models_dir):
    from glide_studio.app.controller import StudioController
    from glide_studio.app.run_settings import RunSettings
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs.record import Resumed

    picture = np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    controller = StudioController(PipelineEngine(precision="fp32"), picture, "start", min_interval=0.0)
    try:
        request = Request(mode=Mode.INPAINT, base_model=f"sd:{models_dir / 'my-inpainter'}", prompt="a red circle",
                          steps=5, batch=2, seed=11, scheduler=Scheduler.EULER_A, upsample_model=None)
        controller.set_run_settings(RunSettings(request, random_seed=False))
        mask = np.zeros((48, 48), np.uint8)
        mask[10:30, 8:40] = 255
        controller.document.set_mask_array(mask)

        def finish(start):
            with qtbot.waitSignal(controller.run_finished, timeout=120_000) as finished:
                start()
            return finished.args[0]

        uninterrupted = finish(controller.generate)

        def pause_at_step_two(progress) -> None:
            if progress.index == 2:
                controller.pause()

        controller.run_step.connect(pause_at_step_two)
        with qtbot.waitSignal(controller.run_paused, timeout=120_000) as paused:
            controller.generate()
        controller.run_step.disconnect(pause_at_step_two)
        stopped = paused.args[0]
        assert 2 <= stopped.index < stopped.total - 1 and stopped.preview is not None
        resumed = finish(controller.resume)
        assert np.array_equal(resumed.images, uninterrupted.images)
        assert resumed.record.resumed == Resumed(stopped.index, ())
    finally:
        assert controller.shutdown()


def test_the_model_menu_downloads_the_sd_model_picked_and_refreshes_the_picker(qtbot, tmp_path, monkeypatch,
                                                                               qt_asyncio_loop):
    from PySide6.QtWidgets import QInputDialog

    from glide_studio.checkpoints import DownloadProgress

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # nothing is downloaded here
    offered = []

    def pick(parent, title, label, items, current, editable):
        offered.extend(items)
        return items[1], True

    monkeypatch.setattr(QInputDialog, "getItem", pick)
    window = open_window(qtbot, tmp_path, PipelineEngine(), starter_scene(32), show=False)
    fetched = []

    def fetch(name, progress, cancel):
        progress(DownloadProgress(2**20, 2**21, 0.0))
        fetched.append(name)

    window.downloader._fetch = fetch
    assert window.download_sd()
    assert not window.download_sd_action.isEnabled()
    qt_asyncio_loop.run_until_complete(window.downloader.task)
    assert fetched == ["sd:sd2-inpainting"]
    from glide_studio.sd.registry import KNOWN_MODELS

    assert "sd2-inpainting" in offered[1] and "GB" in offered[1] and len(offered) == len(KNOWN_MODELS)
    assert window.download_sd_action.isEnabled() and window.progress.format() == "Downloaded"
    window.close()
