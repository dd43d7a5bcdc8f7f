"""PySide6 void calls must not exhaust None's reference count (fatal on CPython 3.11 with PySide6 6.12)."""

from __future__ import annotations

import sys

import glide_studio.app  # noqa: F401 - importing the app layer installs the workaround
from glide_studio.app.qt_compat import make_none_immortal


def test_many_void_qt_calls_do_not_release_none(qapp):
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(50_000):  # more than None's natural reference count on 3.11
        label.setText("x")
    assert sys.getrefcount(None) > 1000
    if sys.version_info < (3, 12):
        assert make_none_immortal() and before > 1 << 40
