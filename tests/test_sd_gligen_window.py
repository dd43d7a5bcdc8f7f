"""GLIGEN regions in the real window (offscreen): the Regions tool is greyed out until a GLIGEN model is picked,
then a drag on the canvas draws a box whose phrase is typed in the Regions panel; drawing, moving, the phrase and
deleting are undoable; another model hides the boxes without losing them; a grounded inpaint keeps
every unmasked pixel and records the boxes, and restoring that run brings them back."""

from __future__ import annotations

import numpy as np
import pytest
from gligen_helpers import save_gligen_folder
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from sd_helpers import save_folder
from window_helpers import open_window, run_to_the_end

from glide_studio.app.engine import PipelineEngine
from glide_studio.app.starter import starter_scene
from glide_studio.pipelines.request import Region
from glide_studio.sd.registry import MODELS_PATH_VARIABLE, grounds_regions
from glide_studio.ui.canvas import Tool


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-gligen-models")
    save_gligen_folder(root / "my-gligen", seed=4)
    save_folder(root / "my-plain-sd", seed=5)
    return root


def _pick(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, [combo.itemData(i) for i in range(combo.count())]
    combo.setCurrentIndex(index)


def _drag(canvas, start: tuple[float, float], end: tuple[float, float]) -> None:
    viewport = canvas.viewport()
    a, b = canvas.mapFromScene(QPointF(*start)), canvas.mapFromScene(QPointF(*end))
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for step in range(1, 5):
        QTest.mouseMove(viewport, QPoint(a.x() + (b.x() - a.x()) * step // 4, a.y() + (b.y() - a.y()) * step // 4))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def _close(value: Region, expected: tuple[int, int, int, int], slack: int = 2) -> bool:
    corners = (value.x0, value.y0, value.x1, value.y1)
    return all(abs(got - want) <= slack for got, want in zip(corners, expected, strict=True))


def test_draw_a_box_type_its_phrase_and_run_grounded_in_the_window(qtbot, tmp_path, monkeypatch, models_dir, capfd):
    monkeypatch.setenv(MODELS_PATH_VARIABLE, str(models_dir))
    name = f"sd:{models_dir / 'my-gligen'}"
    assert grounds_regions(name)
    window = open_window(qtbot, tmp_path, PipelineEngine(precision="fp32"), starter_scene(64))
    window.resize(1200, 800)
    controls, canvas, editor, panel = window.controls, window.canvas, window.regions, window.regions_panel
    action = window.tools.tool_actions[Tool.REGIONS]
    assert not action.isEnabled() and not panel.list.isEnabled()  # the demo model has no use for boxes
    assert "GLIGEN model" in panel.hint.text()

    _pick(controls.model, name)
    assert action.isEnabled() and "drag on the picture" in panel.hint.text()
    action.trigger()
    assert canvas.tool == Tool.REGIONS
    canvas.fit()
    _drag(canvas, (10, 12), (40, 44))
    assert len(editor.regions) == 1 and _close(editor.regions[0], (10, 12, 40, 44))
    assert window.focusWidget() is panel.phrase and panel.phrase.isVisible()
    assert panel.phrase.selectedText() == editor.regions[0].phrase
    panel.phrase.setText("a red ball")
    QTest.keyClick(panel.phrase, Qt.Key.Key_Return)
    assert editor.regions[0].phrase == "a red ball"
    assert window.controller.run_settings.request.regions == editor.regions
    assert "a red ball" in panel.list.item(0).text() and window.regions_tool.item.isVisible()

    drawn = editor.regions[0]
    _drag(canvas, (20, 20), (26, 18))  # inside the box: moves it by (6, -2)
    moved = editor.regions[0]
    assert _close(moved, (drawn.x0 + 6, drawn.y0 - 2, drawn.x1 + 6, drawn.y1 - 2)) and moved.phrase == "a red ball"
    panel.phrase.setText("   ")
    QTest.keyClick(panel.phrase, Qt.Key.Key_Return)  # an empty phrase is refused: the box keeps its own
    assert editor.regions[0].phrase == "a red ball" and panel.phrase.text() == "a red ball"

    stack = canvas.undo_stack
    stack.undo()
    assert editor.regions == (drawn,)
    stack.undo()
    assert editor.regions[0].phrase != "a red ball"
    stack.undo()
    assert editor.regions == () and window.controller.run_settings.request.regions == ()
    for _ in range(3):
        stack.redo()
    assert editor.regions == (moved,)

    canvas.setFocus()
    QTest.keyClick(canvas.viewport(), Qt.Key.Key_Delete)
    assert editor.regions == ()
    stack.undo()
    assert editor.regions == (moved,)

    # Another model: the boxes stay, hidden, the tool disabled; a GLIDE model does not read them; the GLIGEN model
    # again: they show again.
    _pick(controls.model, "demo")
    assert window.controller.run_settings.request.regions == (moved,)
    assert not action.isEnabled() and canvas.tool == Tool.MASK and not window.regions_tool.item.isVisible()
    assert "does not read them" in panel.hint.text() and panel.clear_button.isEnabled()
    mask = np.zeros((64, 64), np.uint8)
    mask[6:50, 8:52] = 255
    window.controller.document.set_mask_array(mask)
    _pick(controls.model, f"sd:{models_dir / 'my-plain-sd'}")  # an SD model without GLIGEN layers refuses them
    assert not action.isEnabled() and "refuses boxes" in panel.hint.text()
    with qtbot.waitSignal(window.controller.run_failed, timeout=60_000) as failed:
        window.run()
    assert "not a GLIGEN model" in str(failed.args[0])
    _pick(controls.model, name)
    assert window.controller.run_settings.request.regions == (moved,) and window.regions_tool.item.isVisible()

    controls.random_seed.setChecked(False)
    controls.fields.widgets["steps"].setValue(3)
    controls.fields.widgets["batch"].setValue(1)
    controls.caption.setText("a garden")
    before = window.controller.document.picture.copy()
    result, steps = run_to_the_end(qtbot, window)
    assert result.record.request.regions == (moved,) and steps == [0, 1, 2]
    kept = mask == 0
    assert np.array_equal(result.images[0][kept], before[kept])

    window.regions.clear()
    assert editor.regions == ()
    window.controller.restore_run(result.record.request)
    assert editor.regions == (moved,) and window.controller.run_settings.request.regions == (moved,)
    window.grab().save(str(tmp_path / "regions.png"))
    window.close()
    assert "Traceback" not in capfd.readouterr().err
