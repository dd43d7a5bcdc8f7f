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


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The OpenAI reference fixtures; skipped when absent, except under CI where absence fails."""
    path = _reference_path()
    if not (path / "README.md").is_file():
        message = f"GLIDE reference data not found at {path} (set GLIDE_REFERENCE_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


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
    return path
