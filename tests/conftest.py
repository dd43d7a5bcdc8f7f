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
_LONG_LIVED_THREADS = ("TMonitor", "pydevd", "QDBusConnection")


def _running_qthreads() -> list:
    """Every running QThread other than the main one, found through the garbage collector."""
    import gc
    import sys

    if "PySide6.QtCore" not in sys.modules:
        return []
    from PySide6.QtCore import QThread

    main = QThread.currentThread()
    found = []
    for candidate in gc.get_objects():
        try:
            if isinstance(candidate, QThread) and candidate is not main and candidate.isRunning():
                found.append(candidate)
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
            if thread not in before and thread.is_alive() and not thread.name.startswith(_LONG_LIVED_THREADS)
        ]
        leaked_q = [thread for thread in _running_qthreads() if id(thread) not in qthreads_before]
        if not (leaked or leaked_q) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    names = [thread.name for thread in leaked] + [f"QThread {thread.objectName()!r}" for thread in leaked_q]
    if names:
        pytest.fail(f"test left threads running: {', '.join(names)}")
