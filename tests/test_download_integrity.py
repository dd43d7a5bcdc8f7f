"""The first download of a checkpoint is checked (size against the registry's parameter count, format), and the
shipped demo weights are checked at every load against the sha256 pinned in their json (and for NaN)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file
from test_download_server import FakeCheckpointServer, clear_network_env, make_checkpoint_bytes

from glide_studio.checkpoints import (
    CheckpointFormatError,
    DownloadError,
    HashNotRecordedError,
    IntegrityError,
    ensure_checkpoint,
    list_models,
    store,
)
from glide_studio.checkpoints import registry as registry_module
from glide_studio.checkpoints.integrity import check_checkpoint_file, pinned_digest, sha256_file, verify_demo
from glide_studio.checkpoints.pin_demo_digests import demo_files, main, pin_demo_digests
from glide_studio.checkpoints.registry import get_spec as real_get_spec


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    clear_network_env(monkeypatch)


def serve_as_official(monkeypatch, server, num_params: int) -> None:
    def local_spec(name):
        spec = real_get_spec(name)
        if spec.source != "official":
            return spec
        return dataclasses.replace(spec, url=server.url("/" + spec.url.rsplit("/", 1)[-1]), num_params=num_params)

    monkeypatch.setattr(store, "get_spec", local_spec)


def test_a_55_byte_web_page_is_never_stored_as_base_inpaint(monkeypatch, tmp_path):
    page = b"<html><head><title>Error</title></head><body></body>\n\n\n"
    assert len(page) == 55
    with FakeCheckpointServer({"/base_inpaint.pt": page}) as server:
        serve_as_official(monkeypatch, server, real_get_spec("base-inpaint").num_params)
        with pytest.raises(DownloadError, match="announces 55 bytes, but the checkpoint holds 770,075,276 to"):
            ensure_checkpoint("base-inpaint", cache=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base-inpaint.pt.lock"]
    status = {s.name: s for s in list_models(tmp_path)}["base-inpaint"]
    assert not status.present and status.verified is None


def test_a_web_page_of_the_right_size_is_refused_by_its_format(monkeypatch, tmp_path):
    page = b"<!DOCTYPE html>\n<html>" + b" " * 30_000 + b"</html>\n"
    with FakeCheckpointServer({"/base_inpaint.pt": page}) as server:
        serve_as_official(monkeypatch, server, 10_000)  # 20 kB to about 8 MB
        with pytest.raises(CheckpointFormatError, match="is a web page or a server message .*not a checkpoint"):
            ensure_checkpoint("base-inpaint", cache=tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["base-inpaint.pt.lock"]
        server.files["/base_inpaint.pt"] = make_checkpoint_bytes(seed=5)
        path = ensure_checkpoint("base-inpaint", cache=tmp_path)
    assert path.read_bytes() == server.files["/base_inpaint.pt"]


def test_a_stored_file_that_is_no_checkpoint_is_reported_not_verified(tmp_path):
    (tmp_path / "base.pt").write_bytes(b"<html>not found</html>")
    status = {s.name: s for s in list_models(tmp_path, verify_hash=False)}["base"]
    assert status.present and status.verified is False and "web page" in status.problem


def test_checkpoint_formats_are_told_apart(tmp_path):
    pt = tmp_path / "a.pt"
    torch.save({"w": torch.ones(2)}, pt)
    check_checkpoint_file(pt)
    safetensors = tmp_path / "a.safetensors"
    save_file({"w": torch.ones(2)}, str(safetensors))
    check_checkpoint_file(safetensors)
    other = tmp_path / "b.pt"
    other.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointFormatError, match=r"not a PyTorch checkpoint or a safetensors file \(it starts"):
        check_checkpoint_file(other)


# --- the shipped demo weights ------------------------------------------------------------------------------
def test_every_shipped_demo_file_has_its_digest_pinned_and_matches():
    folder = registry_module.demo_weights_dir()
    pairs = demo_files(folder)
    assert {weights.stem for weights, _ in pairs} >= {"demo-base-inpaint", "demo-upsample-inpaint"}
    for weights, meta in pairs:
        assert pinned_digest(meta) == sha256_file(weights), f"run pin_demo_digests: {weights.name} changed"
        verify_demo(weights, meta)


@pytest.fixture
def demo_folder(tmp_path, monkeypatch):
    folder = tmp_path / "demo"
    folder.mkdir()
    save_file({"w": torch.arange(6, dtype=torch.float16)}, str(folder / "demo-base-inpaint.safetensors"))
    (folder / "demo-base-inpaint.json").write_text(json.dumps({"name": "demo-base-inpaint", "options": {"x": 1}}))
    monkeypatch.setenv("GLIDE_STUDIO_DEMO_WEIGHTS", str(folder))
    monkeypatch.setattr(registry_module, "_package_weights_dir", lambda: None)
    return folder


def test_the_pin_command_writes_every_digest_and_keeps_the_other_keys(demo_folder, capsys):
    assert main([str(demo_folder)]) == 0
    weights = demo_folder / "demo-base-inpaint.safetensors"
    digest = sha256_file(weights)
    assert capsys.readouterr().out == f"{digest}  demo-base-inpaint.safetensors\n"
    meta = json.loads((demo_folder / "demo-base-inpaint.json").read_text())
    assert meta == {"name": "demo-base-inpaint", "options": {"x": 1}, "sha256": digest}
    assert ensure_checkpoint("demo-base-inpaint") == weights
    assert sorted(p.name for p in demo_folder.iterdir()) == ["demo-base-inpaint.json", "demo-base-inpaint.safetensors"]


def test_an_unpinned_demo_file_is_refused_with_the_command_to_run(demo_folder):
    with pytest.raises(HashNotRecordedError, match="pins no sha256 .*python -m glide_studio.checkpoints.pin_demo"):
        ensure_checkpoint("demo-base-inpaint")


def test_a_flipped_byte_in_a_demo_file_is_a_clear_error(demo_folder):
    pin_demo_digests(demo_folder)
    weights = demo_folder / "demo-base-inpaint.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # inside the tensor data: the file still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"demo-base-inpaint.safetensors is damaged: its sha256 is [0-9a-f]{64}, "
                                             r"but demo-base-inpaint.json pins [0-9a-f]{64}\. Reinstall"):
        ensure_checkpoint("demo-base-inpaint")
    status = {s.name: s for s in list_models()}["demo-base-inpaint"]
    assert status.verified is False and "is damaged" in status.problem


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinite_demo_weights_are_refused_at_pinning_and_at_load(demo_folder, bad):
    weights = demo_folder / "demo-base-inpaint.safetensors"
    save_file({"ok": torch.ones(3), "w": torch.tensor([1.0, bad])}, str(weights))
    with pytest.raises(CheckpointFormatError, match="holds 1 NaN or infinite value"):
        pin_demo_digests(demo_folder)
    assert pinned_digest(demo_folder / "demo-base-inpaint.json") is None
    meta = demo_folder / "demo-base-inpaint.json"  # pinned by hand: the load still refuses
    meta.write_text(json.dumps({"options": {}, "sha256": sha256_file(weights)}))
    with pytest.raises(CheckpointFormatError, match="NaN or infinite value.* in w: .*refused"):
        ensure_checkpoint("demo-base-inpaint")
