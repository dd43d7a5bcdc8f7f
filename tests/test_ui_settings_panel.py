"""The settings panel: scrolling it over a spin box or a combo box scrolls the panel and leaves the setting alone;
once the user has clicked into the control, the wheel changes it as usual."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea
from window_helpers import open_window

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import starter_scene


def _wheel_down(widget) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_settings_and_changes_a_control_only_once_it_is_clicked_into(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(64))
    window.resize(1100, 560)  # short: the settings scroll
    qtbot.wait(50)
    steps = window.controls.fields.widgets["steps"]
    sampler = window.controls.fields.widgets["sampler"]
    scroll = next(parent for parent in _parents(steps) if isinstance(parent, QScrollArea))
    assert scroll.verticalScrollBar().maximum() > 0
    before_steps, before_sampler = steps.value(), sampler.currentIndex()
    top = scroll.verticalScrollBar().value()
    _wheel_down(steps)
    _wheel_down(sampler)
    assert steps.value() == before_steps and sampler.currentIndex() == before_sampler
    assert scroll.verticalScrollBar().value() > top  # the panel scrolled instead
    steps.setFocus()
    qtbot.waitUntil(steps.hasFocus)
    _wheel_down(steps)
    assert steps.value() == before_steps - 1
    window.close()


def _parents(widget):
    while widget is not None:
        widget = widget.parentWidget()
        yield widget


def test_the_advanced_settings_are_folded_and_the_choice_is_remembered(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(64))
    controls = window.controls
    assert not controls.advanced.isVisible()
    assert controls.fields.widgets["reuse_interval"].parentWidget() is controls.advanced
    assert controls.fields.widgets["steps"].parentWidget() is not controls.advanced
    controls.advanced_toggle.click()
    assert controls.advanced.isVisible() and controls.fields.widgets["guidance_stop"].isVisible()
    window.close()
    again = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(64))
    assert again.controls.advanced_toggle.isChecked() and again.controls.advanced.isVisible()
    again.close()
