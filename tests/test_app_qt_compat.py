"""PySide6 void calls must not use up None's reference count: PySide6 6.12.0 on CPython 3.10/3.11 does, until
the interpreter aborts; pyproject keeps such a PySide6 out (no patch of the interpreter stands in for it)."""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import Version


def test_many_void_qt_calls_do_not_release_none(qapp):
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(50_000):  # more than None's natural reference count on 3.11
        label.setText("x")
    assert sys.getrefcount(None) >= before - 100


def test_the_installed_pyside6_meets_the_projects_constraint():
    wanted = [Requirement(text) for text in metadata.requires("glide-studio") or []]
    pyside = [req for req in wanted
              if req.name == "PySide6-Essentials" and (req.marker is None or req.marker.evaluate())]
    assert len(pyside) == 1, wanted
    installed = Version(metadata.version("PySide6-Essentials"))
    assert installed in pyside[0].specifier, f"PySide6 {installed} does not meet {pyside[0]}"
    if sys.version_info < (3, 12):
        assert Version("6.12.0") not in pyside[0].specifier
