"""Project zips are untrusted input: each crafted file is refused before extraction with a message saying why."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections import namedtuple

import numpy as np
import pytest

from glide_studio.app import project as project_module
from glide_studio.app.errors import ProjectError
from glide_studio.app.history import HistoryNode
from glide_studio.app.project import ProjectData, load_project, save_project
from glide_studio.app.run_settings import RunSettings


def _data(nodes: int = 1) -> ProjectData:
    picture = np.full((32, 48, 3), 90, np.uint8)
    history = [HistoryNode(i, None if i == 0 else i - 1, picture, f"node {i}", None, 0.0) for i in range(nodes)]
    return ProjectData(picture, np.zeros((32, 48), np.uint8), np.zeros((32, 48, 4), np.uint8), None,
                       RunSettings(), history, nodes - 1)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path, replace: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    members = {**_members(path), **replace}
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _grey_png(width: int, height: int) -> bytes:
    """A black greyscale PNG streamed row by row: a 12000 x 12000 one is 140 KB and never held in memory."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []
    for _ in range(height):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "p.glidestudio"
    save_project(path, _data(nodes=3))
    assert load_project(path).picture.shape == (32, 48, 3)  # the untouched file opens
    return path


@pytest.mark.parametrize("member", ["picture.png", "mask.png", "history/1.png"])
def test_a_bomb_picture_or_mask_is_refused_from_its_header(saved, member):
    _rewrite(saved, {member: _grey_png(12_000, 12_000)})
    assert saved.stat().st_size < 1_000_000
    with pytest.raises(ProjectError, match=f"{member} is 12000x12000 pixels, larger than a picture may be "
                                           r"\(89 megapixels, 8192 px a side\); it was not opened"):
        load_project(saved)


def test_a_layer_of_another_size_is_refused_before_decoding(saved):
    _rewrite(saved, {"sketch.png": _grey_png(64, 64)})
    with pytest.raises(ProjectError, match="damaged: sketch.png is 64x64 but the picture is 48x32"):
        load_project(saved)


def test_pictures_that_together_pass_the_memory_budget_are_refused(saved, monkeypatch):
    monkeypatch.setattr(project_module, "MAX_TOTAL_PIXELS", 5 * 32 * 48)
    with pytest.raises(ProjectError, match="its 6 pictures hold 0 megapixels in all, more than the 0 a project"):
        load_project(saved)


@pytest.mark.parametrize("depth", [100, 200_000])
def test_deep_json_is_refused(saved, depth):
    _rewrite(saved, {"project.json": b"[" * depth + b"]" * depth})
    with pytest.raises(ProjectError, match="project.json is nested more than 32 levels deep"):
        load_project(saved)


def test_a_json_that_unpacks_past_its_limit_is_refused(saved):
    manifest = json.loads(_members(saved)["project.json"])
    padded = json.dumps(manifest).encode() + b" " * 40_000_000  # 40 MB of spaces deflate to 40 kB
    _rewrite(saved, {"project.json": padded}, compression=zipfile.ZIP_DEFLATED)
    assert saved.stat().st_size < 200_000
    with pytest.raises(ProjectError, match="the entry project.json unpacks to 40 MB, more than the 34 MB"):
        load_project(saved)


def _patch_headers(path, offset_local: int, offset_central: int, value: bytes) -> None:
    """Overwrite a field of every local and central header (the zip module cannot write these entries)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        start = data.find(signature)
        while start >= 0:
            data[start + offset: start + offset + len(value)] = value
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def test_encrypted_entries_are_refused(saved):
    _patch_headers(saved, 6, 8, b"\x01\x00")  # general purpose flag bit 0: encrypted
    with pytest.raises(ProjectError, match=r"has password-protected \(encrypted\) entries \(project.json, "):
        load_project(saved)


def test_an_unknown_compression_method_is_refused(saved):
    _patch_headers(saved, 8, 10, b"\x63\x00")  # method 99 (AES), which zipfile cannot read
    with pytest.raises(ProjectError, match="uses zip compression method 99, which GLIDE Studio does not read "
                                           r"\(only stored and deflate\)"):
        load_project(saved)


def test_a_journal_larger_than_the_free_space_is_not_extracted(saved, monkeypatch, tmp_path):
    _rewrite(saved, {project_module.JOURNAL_MEMBER: b"\x00" * 1_000_000}, compression=zipfile.ZIP_DEFLATED)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(project_module.shutil, "disk_usage", lambda folder: Usage(10**9, 10**9, 10**6))
    made = []
    monkeypatch.setattr(project_module.tempfile, "mkstemp", lambda *a, **k: made.append(1))
    with pytest.raises(ProjectError, match="its journal unpacks to 1 MB, but only 1 MB are free in .*free some"):
        load_project(saved)
    assert made == []
