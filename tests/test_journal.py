"""Never losing work: the journal rebuilds the document exactly, survives kill -9, keeps windows apart, and a
full disk never harms a file that is already there."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from glide_studio.app.controller import StudioController
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.journal import Journal
from glide_studio.app.run_settings import RunSettings
from glide_studio.app.sessions import Session, abandoned_documents
from glide_studio.app.starter import starter_scene
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.ui.canvas import Canvas, Tool

SIZE = 48


def _stroke(canvas: Canvas, points) -> None:
    canvas._begin_stroke(QPointF(*points[0]))
    for start, end in zip(points, points[1:], strict=False):
        canvas._paint_segment(QPointF(*start), QPointF(*end))
        canvas._last_point = QPointF(*end)
    canvas._end_stroke()


def _random_points(rng: random.Random) -> list[tuple[float, float]]:
    return [(rng.uniform(0, SIZE), rng.uniform(0, SIZE)) for _ in range(rng.randint(1, 4))]


def _act(rng: random.Random, qtbot, controller: StudioController, canvas: Canvas) -> None:
    """One random user action, as the window would do it."""
    document = controller.document
    action = rng.choice(["stroke"] * 6 + ["sketch", "erase", "clear", "invert", "box", "auto box", "caption",
                                          "steps", "run", "accept", "discard", "delete", "goto", "undo", "redo",
                                          "pause", "resume"])
    if action in ("stroke", "sketch", "erase"):
        canvas.set_tool({"stroke": Tool.MASK, "sketch": Tool.SKETCH, "erase": Tool.ERASER}[action])
        canvas.set_brush_size(rng.randint(2, 12))
        _stroke(canvas, _random_points(rng))
    elif action == "clear":
        canvas.clear_mask()
    elif action == "invert":
        canvas.invert_mask()
    elif action == "box":
        side = rng.randint(16, SIZE)
        document.set_edit_box(EditBox(rng.randint(0, SIZE - side), rng.randint(0, SIZE - side), side, side))
    elif action == "auto box":
        document.set_edit_box(None)
    elif action == "caption":
        controller.set_run_settings(controller.run_settings.with_request(prompt=rng.choice(["a red", "a blue"])))
    elif action == "steps":
        controller.set_run_settings(controller.run_settings.with_request(steps=rng.randint(1, 3)))
    elif action == "run" and document.has_mask():
        document.set_edit_box(None)  # a hand-placed box may leave strokes outside it; that is refused
        with qtbot.waitSignal(controller.run_finished, timeout=5000):
            controller.generate()
    elif action == "pause" and document.has_mask() and controller.run_settings.request.steps > 1:
        document.set_edit_box(None)
        controller.engine.step_delay = 0.02  # so the pause is asked for before the first step is done
        try:
            with qtbot.waitSignal(controller.run_paused, timeout=5000):
                controller.generate().pause()  # it stops after its first step
        finally:
            controller.engine.step_delay = 0.0
    elif action == "resume" and controller.paused is not None and document.has_mask():
        document.set_edit_box(None)
        with qtbot.waitSignal(controller.run_finished, timeout=5000):
            controller.resume()  # the same run when nothing changed since, else a fork of the paused one
    elif action == "accept" and controller.runs:
        run = rng.randrange(len(controller.runs))
        controller.accept_candidate(rng.randrange(len(controller.runs[run].images)), run)
    elif action == "discard":
        controller.discard_candidates()
    elif action == "delete" and controller.runs:
        run = rng.randrange(len(controller.runs))
        controller.delete_candidate(run, rng.randrange(len(controller.runs[run].images)))
    elif action == "goto":
        controller.go_to_node(rng.choice(controller.history.nodes()).id)
    elif action == "undo":
        document.undo_stack.undo()
    elif action == "redo":
        document.undo_stack.redo()


def _controller(picture=None) -> StudioController:
    controller = StudioController(FakeEngine(step_delay=0.0), starter_scene(SIZE) if picture is None else picture,
                                  "start", min_interval=0.0)
    controller.set_run_settings(RunSettings(Request(mode=Mode.INPAINT, steps=2, batch=2), random_seed=False))
    return controller


def test_replaying_the_journal_of_200_random_actions_rebuilds_the_same_document(qtbot, tmp_path):
    rng = random.Random(1234)
    live = _controller()
    canvas = Canvas(live.document)
    qtbot.addWidget(canvas)
    journal = Journal(tmp_path / "journal.sqlite")
    live.attach_journal(journal)
    digests = []
    for number in range(200):
        _act(rng, qtbot, live, canvas)
        if number % 50 == 49:
            digests.append(live.state_digest())
    assert len(live.runs) >= 3 and len(live.history) >= 3
    assert sum(event.kind == "layer" for event in journal.events()) > 50
    assert any(run.paused_at for run in live.runs) and any(run.parent is not None for run in live.runs)

    rebuilt = _controller(np.zeros((8, 8, 3), np.uint8))
    try:
        rebuilt.replay(Journal(tmp_path / "journal.sqlite"))
        assert rebuilt.state_digest() == live.state_digest() == digests[-1]
        assert np.array_equal(rebuilt.document.mask_array(), live.document.mask_array())
        assert [node.id for node in rebuilt.history.nodes()] == [node.id for node in live.history.nodes()]
    finally:
        assert live.shutdown() and rebuilt.shutdown()


# -- kill -9 ----------------------------------------------------------------------------------------------

_PAINTER = textwrap.dedent("""
    import os, sys, time
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.app.starter import starter_scene
    from glide_studio.ui.main_window import MainWindow
    window = MainWindow(FakeEngine(), picture=starter_scene(64), min_interval=0.0)
    canvas = window.canvas
    print("ready", window.session.folder, flush=True)
    for number in range(1000):
        x = 4 + (number * 7) % 56
        canvas._begin_stroke(QPointF(x, 8))
        canvas._paint_segment(QPointF(x, 8), QPointF(x, 56))
        canvas._last_point = QPointF(x, 56)
        canvas._end_stroke()
        print("stroke", number + 1, flush=True)
        time.sleep(0.002)
""")


def test_kill_9_at_random_moments_loses_no_finished_stroke(tmp_path, user_data_dir):
    environment = {**os.environ, "GLIDE_STUDIO_DATA": str(user_data_dir), "XDG_CONFIG_HOME": str(tmp_path)}
    rng = random.Random(7)
    restored_counts = []
    for _trial in range(20):
        child = subprocess.Popen([sys.executable, "-c", _PAINTER], stdout=subprocess.PIPE, text=True,
                                 env=environment)
        ready = child.stdout.readline().split()
        folder = Path(ready[1])
        target, finished = rng.randint(1, 60), 0
        while finished < target:
            line = child.stdout.readline()
            if not line:
                break
            finished = int(line.split()[1])
        time.sleep(rng.uniform(0, 0.01))  # somewhere inside the next stroke, or between two
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Every stroke the child finished (and some it may have started) must come back.
        assert folder in abandoned_documents()
        session = Session.claim(folder)
        rebuilt = _controller(np.zeros((8, 8, 3), np.uint8))
        try:
            rebuilt.replay(session.journal)
            strokes = [event for event in session.journal.events() if event.kind == "layer"]
            assert len(strokes) >= finished
            expected = np.zeros((64, 64), bool)
            for number in range(len(strokes)):
                x = 4 + (number * 7) % 56
                expected[10:54, max(0, x - 10): x + 11] = True  # the core of each 24 px line
            painted = rebuilt.document.mask_array() > 0
            assert painted[expected].all()
        finally:
            assert rebuilt.shutdown()
            session.close()
        restored_counts.append(len(strokes))
    assert max(restored_counts) > min(restored_counts)  # the kills fell at different moments


# -- windows, disks -------------------------------------------------------------------------------------

def test_two_windows_keep_their_own_recovery(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from glide_studio.ui.main_window import MainWindow

    def window() -> MainWindow:
        opened = MainWindow(FakeEngine(), QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                            picture=starter_scene(32), min_interval=0.0)
        qtbot.addWidget(opened)
        return opened

    first, second = window(), window()
    assert first.session.folder != second.session.folder
    second.controller.document.set_mask_array(np.ones((32, 32)))
    assert abandoned_documents() == []  # both owners are alive
    first.close()
    assert not first.session.folder.exists() and second.session.folder.exists()
    assert second.session.journal.count() > 2
    second.controller.mark_saved()
    second.close()


def test_a_full_disk_leaves_the_file_already_there_intact(tmp_path, monkeypatch):
    from glide_studio.png_metadata import write_png

    path = tmp_path / "result.png"
    write_png(path, starter_scene(32), None)
    before = path.read_bytes()

    def no_space(_descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        write_png(path, np.zeros((32, 32, 3), np.uint8), None)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["result.png"]  # no half-written temporary


def test_a_project_keeps_the_gallery_and_reopens_it_exactly(qtbot, tmp_path):
    controller = _controller()
    controller.attach_journal(Journal(tmp_path / "session.sqlite"))
    controller.document.set_mask_array(np.pad(np.ones((10, 10)), 19))
    for _ in range(2):
        with qtbot.waitSignal(controller.run_finished, timeout=5000):
            controller.generate()
    controller.accept_candidate(1, run=0)  # an older run's candidate, accepted later
    project = tmp_path / "scene.glidestudio"
    controller.save_project(project)
    assert not controller.has_unsaved_changes

    other = _controller(np.zeros((8, 8, 3), np.uint8))
    try:
        other.attach_journal(Journal(tmp_path / "other.sqlite"))
        other.load_project(project)
        assert other.state_digest() == controller.state_digest()
        assert len(other.runs) == 2 and not other.has_unsaved_changes
        other.document.undo_stack.undo()  # nothing to undo across a reopening, and nothing breaks
        assert len(other.history) == 2
    finally:
        assert controller.shutdown() and other.shutdown()


def test_an_older_project_without_a_journal_still_opens(qtbot, tmp_path):
    import zipfile

    controller = _controller()
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 20))
    project = tmp_path / "old.glidestudio"
    controller.save_project(project)  # no journal attached: the zip holds no journal
    with zipfile.ZipFile(project) as archive:
        assert "journal.sqlite" not in archive.namelist()
        manifest = json.loads(archive.read("project.json"))
    assert manifest["version"] == 3
    other = _controller(np.zeros((8, 8, 3), np.uint8))
    try:
        other.attach_journal(Journal(tmp_path / "other.sqlite"))
        other.load_project(project)
        assert np.array_equal(other.document.mask_array(), controller.document.mask_array())
        assert other.journal.count() > 2  # the import itself is journalled, so a crash now loses nothing
    finally:
        assert controller.shutdown() and other.shutdown()
