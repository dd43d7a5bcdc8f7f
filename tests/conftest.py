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
