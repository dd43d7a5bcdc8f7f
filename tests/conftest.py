"""Shared fixtures: where the reference data lives, and Qt offscreen for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_DEFAULT_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "glide"


def _reference_path() -> Path:
    override = os.environ.get("GLIDE_REFERENCE_DATA")
    return Path(override) if override else _DEFAULT_REFERENCE


_MISSING_REFERENCE = "GLIDE reference data not found at"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The OpenAI reference fixtures; skipped when absent, except under CI where absence fails."""
    path = _reference_path()
    if not (path / "README.md").is_file():
        message = f"{_MISSING_REFERENCE} {path} (set GLIDE_REFERENCE_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_terminal_summary(terminalreporter):
    """A run that skipped tests for want of the reference data says so in its last lines: those skips are tests
    that did not run, not a pass."""
    missing = [report for report in terminalreporter.stats.get("skipped", [])
               if _MISSING_REFERENCE in str(getattr(report, "longrepr", ""))]
    if missing:
        terminalreporter.write_sep("!", f"{len(missing)} tests did NOT run: {_MISSING_REFERENCE} {_reference_path()}; "
                                   "put it at ../shared/reference/glide beside the clone or set GLIDE_REFERENCE_DATA",
                                   red=True, bold=True)


# --- No thread may outlive its test (napari-style leak check) -----------------------------------------
# Threads that libraries start once and keep for the whole process, by name prefix.
_LONG_LIVED_THREADS = ("TMonitor", "tqdm_monitor", "pydevd", "QDBusConnection")


_started_qthreads = None


def _running_qthreads() -> list:
    """Every QThread started (through Python) since PySide6 was imported that is still running.

    QThread.start is wrapped once to remember threads in a WeakSet; scanning the garbage collector
    instead costs a fraction of a second per test once torch is loaded.
    """
    global _started_qthreads
    import sys
    import weakref

    if "PySide6.QtCore" not in sys.modules:
        return []
    from PySide6.QtCore import QThread

    if _started_qthreads is None:
        _started_qthreads = weakref.WeakSet()
        original_start = QThread.start

        def start_and_remember(self, *args, **kwargs):
            _started_qthreads.add(self)
            return original_start(self, *args, **kwargs)

        QThread.start = start_and_remember
    found = []
    for thread in list(_started_qthreads):
        try:
            if thread.isRunning():
                found.append(thread)
        except RuntimeError:  # the C++ side is already gone
            continue
    return found


@pytest.fixture(autouse=True)
def no_thread_leaks():
    """Fails a test that leaves a threading.Thread or a QThread running (after a short grace period)."""
    import threading
    import time

    before = set(threading.enumerate())
    qthreads_before = {id(thread) for thread in _running_qthreads()}
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [
            thread
            for thread in threading.enumerate()
            if thread not in before
            and thread.is_alive()
            # Dummy entries stand for foreign (e.g. Qt) threads and never die; QThreads are checked below.
            and not isinstance(thread, threading._DummyThread)
            and not thread.name.startswith(_LONG_LIVED_THREADS)
            and type(thread).__name__ not in _LONG_LIVED_THREADS
        ]
        leaked_q = [thread for thread in _running_qthreads() if id(thread) not in qthreads_before]
        if not (leaked or leaked_q) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    names = [thread.name for thread in leaked] + [f"QThread {thread.objectName()!r}" for thread in leaked_q]
    if names:
        pytest.fail(f"test left threads running: {', '.join(names)}")


@pytest.fixture(autouse=True)
def user_data_dir(tmp_path_factory, monkeypatch) -> Path:
    """Every test keeps its runs' inputs (and any other per-user data) in a folder of its own."""
    path = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("GLIDE_STUDIO_DATA", str(path))
    monkeypatch.setenv("GLIDE_STUDIO_LOG_DIR", str(path / "logs"))  # an editor started by a test logs here
    return path


@pytest.fixture(autouse=True)
def no_real_compile(monkeypatch):
    """No test compiles for real (an inductor compile of a UNet takes minutes): the editor's engine is told not to
    (GLIDE_STUDIO_COMPILE=0; the tests of the compile wiring lift it and pass stand-in compilers), and a test that
    reaches torch.compile all the same fails."""
    import sys

    monkeypatch.setenv("GLIDE_STUDIO_COMPILE", "0")
    reached = []
    torch = sys.modules.get("torch")
    if torch is not None:
        def refuse(*args, **kwargs):
            reached.append(args[:1])
            raise RuntimeError("a test reached a real torch.compile")

        monkeypatch.setattr(torch, "compile", refuse)
    yield
    assert not reached, "a test reached a real torch.compile (pass a stand-in compiler)"


# --- The command line's runs without networks -----------------------------------------------------------------
def _fake_pipeline(models, request, resume=None):
    """Deterministic in the request, like the real pipelines: 3 steps, then the final pictures (the picture's
    unmasked pixels kept, as the real paste-back keeps them)."""
    import numpy as np
    import torch

    from glide_studio.pipelines.editbox import paste_back, prepare
    from glide_studio.pipelines.request import Step

    assert models.precision.name == "fp32"
    rng = np.random.default_rng([request.seed, len(request.prompt), request.steps])
    results = rng.integers(0, 256, (request.batch, 64, 64, 3), dtype=np.uint8)
    if request.image is not None:
        boxed = prepare(request.image, request.mask, request.sketch, request.edit_box, 64)
        results = np.stack([paste_back(request.image, r, boxed, request.mask) for r in results])
    preview = torch.zeros(request.batch, 3, 8, 8)
    for index in range(3):
        yield Step(index, 3, "base", preview, preview, results if index == 2 else None)


@pytest.fixture
def fake_models(monkeypatch):
    """The CLI loads no network and runs `_fake_pipeline`; the list records what it was asked to load."""
    import types

    import torch

    from glide_studio import pipelines
    from glide_studio.models.precision import Precision
    from glide_studio.runs import models as run_models

    loaded = []
    fake = types.SimpleNamespace(precision=Precision(torch.device("cpu")))

    def load(request, device, precision):
        loaded.append((request.base_model, request.upsample_model, device, precision))
        return fake

    monkeypatch.setattr(run_models, "load_model_set", load)
    monkeypatch.setattr(pipelines, "run", _fake_pipeline)
    return loaded


@pytest.fixture(autouse=True)
def no_blocking_dialogs(monkeypatch):
    """A modal dialog would wait forever in a test: unless a test answers them itself, questions are answered
    Discard (e.g. closing a window with unsaved strokes), notices are acknowledged, file dialogs cancelled."""
    if "PySide6.QtWidgets" not in __import__("sys").modules:
        yield
        return
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Discard)
    for kind in ("getOpenFileName", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, kind, lambda *args, **kwargs: ("", ""))
    for kind in ("warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, kind, lambda *args, **kwargs: QMessageBox.StandardButton.Ok)
    yield


@pytest.fixture
def qt_asyncio_loop(qapp):
    """Qt's event loop as asyncio's (qasync), as the app runs downloads."""
    import asyncio

    import qasync

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.run_until_complete(loop.shutdown_default_executor())  # joins to_thread's worker
    asyncio.set_event_loop(None)
    loop.close()
