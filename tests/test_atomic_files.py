"""Atomic writes leave files as readable as a plain write would, and nothing behind when they fail."""

from __future__ import annotations

import os
import stat

import pytest

from glide_studio.atomic_files import write_atomically


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    written = write_atomically(tmp_path / "atomic.bin", lambda file: file.write(b"data"))
    assert written.read_bytes() == b"data"
    assert _mode(written) == _mode(plain)  # not mkstemp's owner-only 0600


def test_replacing_a_file_keeps_its_mode(tmp_path):
    target = tmp_path / "picture.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomically(target, lambda file: file.write(b"new"))
    assert target.read_bytes() == b"new" and _mode(target) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "picture.png"
    target.write_bytes(b"old")

    def fail(file):
        file.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["picture.png"]
