"""ensure_checkpoint / list_models / the CLI commands against a local server standing in for OpenAI's."""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket

import pytest
import torch
from safetensors.torch import save_file
from test_download_server import FakeCheckpointServer, clear_network_env, make_checkpoint_bytes

from glide_studio.checkpoints import (
    HashNotRecordedError,
    IntegrityError,
    MissingWeightsError,
    OfflineError,
    cache_dir,
    cli_commands,
    ensure_checkpoint,
    list_models,
    load_state_dict_file,
    store,
    verify,
)
from glide_studio.checkpoints import registry as registry_module
from glide_studio.checkpoints.pin_demo_digests import pin_demo_digests
from glide_studio.checkpoints.registry import get_spec as real_get_spec


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    clear_network_env(monkeypatch)
    # Demo weights: an empty folder unless a test writes some.
    monkeypatch.setenv("GLIDE_STUDIO_DEMO_WEIGHTS", str(tmp_path / "demo"))
    monkeypatch.setattr(registry_module, "_package_weights_dir", lambda: None)
    monkeypatch.setattr(registry_module, "_repo_weights_dir", lambda: tmp_path / "repo-weights")


@pytest.fixture(scope="module")
def files():
    return {"/clip_text_enc.pt": make_checkpoint_bytes(seed=2), "/base.pt": make_checkpoint_bytes(seed=3)}


@pytest.fixture
def server(files, monkeypatch):
    with FakeCheckpointServer(dict(files)) as srv:
        def local_spec(name):
            spec = real_get_spec(name)
            if spec.source != "official":
                return spec
            return dataclasses.replace(spec, url=srv.url("/" + spec.url.rsplit("/", 1)[-1]), num_params=1000)

        monkeypatch.setattr(store, "get_spec", local_spec)
        monkeypatch.setattr(cli_commands, "get_spec", local_spec)
        yield srv


def test_cache_dir_precedence(tmp_path, monkeypatch):
    assert cache_dir(create=False).name == "glide-studio"
    monkeypatch.setenv("GLIDE_STUDIO_CACHE", str(tmp_path / "from-env"))
    assert cache_dir() == tmp_path / "from-env" and (tmp_path / "from-env").is_dir()
    assert cache_dir(tmp_path / "from-arg") == tmp_path / "from-arg"


def test_ensure_downloads_once_then_verifies_from_cache(server, files, tmp_path):
    cache = tmp_path / "cache"
    seen = []
    path = ensure_checkpoint("clip-text-enc", progress=seen.append, cache=cache)
    assert path == cache / "clip-text-enc.pt"
    assert path.read_bytes() == files["/clip_text_enc.pt"]
    assert seen[-1].done and seen[-1].bytes_done == len(files["/clip_text_enc.pt"])
    assert verify(path)
    assert ensure_checkpoint("clip-text-enc", cache=cache, offline=True) == path
    assert len(server.requests) == 1
    state = load_state_dict_file(path)
    assert "out.2.weight" in state


def test_ensure_refuses_a_tampered_cached_file(server, tmp_path):
    cache = tmp_path / "cache"
    path = ensure_checkpoint("base", cache=cache)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupted or was tampered"):
        ensure_checkpoint("base", cache=cache)


def test_ensure_refuses_a_cached_file_without_record(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "base.pt").write_bytes(b"dropped in by hand")
    with pytest.raises(HashNotRecordedError, match="cannot be verified"):
        ensure_checkpoint("base", cache=cache)


def test_offline_and_not_cached_is_refused_without_network(server, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network used in offline mode")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("GLIDE_STUDIO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline mode is on.*glide-studio download base"):
        ensure_checkpoint("base", cache=tmp_path / "cache")
    assert server.requests == []


def test_demo_weights_missing_and_present(tmp_path):
    with pytest.raises(MissingWeightsError, match="demo model 'demo-base-inpaint' is not available"):
        ensure_checkpoint("demo-base-inpaint")
    demo = tmp_path / "demo"
    demo.mkdir()
    save_file({"w": torch.ones(2)}, str(demo / "demo-base-inpaint.safetensors"))
    (demo / "demo-base-inpaint.json").write_text(json.dumps({"options": {"image_size": 64}}))
    with pytest.raises(HashNotRecordedError, match="pins no sha256.*pin_demo_digests"):
        ensure_checkpoint("demo-base-inpaint", offline=True)
    pin_demo_digests(demo)
    path = ensure_checkpoint("demo-base-inpaint", offline=True)
    assert path == demo / "demo-base-inpaint.safetensors"
    assert registry_module.is_downloaded("demo-base-inpaint")
    assert not registry_module.is_downloaded("demo-upsample-inpaint")


def test_list_models_reports_present_sizes_and_verification(server, files, tmp_path):
    cache = tmp_path / "cache"
    ensure_checkpoint("clip-text-enc", cache=cache)
    ensure_checkpoint("base", cache=cache)
    base = cache / "base.pt"
    data = bytearray(base.read_bytes())
    data[5] ^= 1
    base.write_bytes(bytes(data))
    statuses = {s.name: s for s in list_models(cache)}
    assert list(statuses) == list(registry_module.REGISTRY)
    text = statuses["clip-text-enc"]
    assert text.present and text.verified is True and text.size == len(files["/clip_text_enc.pt"])
    assert text.path == cache / "clip-text-enc.pt" and text.kind == "clip-text"
    assert statuses["base"].verified is False and "sha256" in statuses["base"].problem
    assert not statuses["upsample"].present and statuses["upsample"].size is None
    assert statuses["upsample"].approx_size is not None
    demo = statuses["demo-base-inpaint"]
    assert not demo.present and "not available" in demo.problem
    quick = {s.name: s for s in list_models(cache, verify_hash=False)}
    assert quick["base"].present and quick["base"].verified is None


def _parser():
    parser = argparse.ArgumentParser(prog="glide-studio")
    cli_commands.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_download_and_models(server, files, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = _parser().parse_args(["download", "clip-text-enc", "--cache-dir", str(cache), "-q"])
    assert args.func(args) == 0
    assert (cache / "clip-text-enc.pt").read_bytes() == files["/clip_text_enc.pt"]
    args = _parser().parse_args(["models", "--cache-dir", str(cache)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("clip-text-enc "))
    assert " yes " in row and "yes" in row.split()[-2] and str(cache / "clip-text-enc.pt") in row
    assert "not downloaded: base, upsample" in out


def test_cli_download_with_conversion_and_failure_exit_code(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = _parser().parse_args(["download", "base", "--safetensors", "--cache-dir", str(cache), "-q"])
    assert args.func(args) == 0
    assert (cache / "base.safetensors").is_file() and not (cache / "base.pt").exists()
    assert ensure_checkpoint("base", cache=cache, offline=True) == cache / "base.safetensors"
    server.set("404")
    args = _parser().parse_args(["download", "upsample", "--cache-dir", str(cache), "-q"])
    assert args.func(args) == 1
    assert "upsample: error: download of" in capsys.readouterr().err


def test_cli_models_flags_a_corrupted_file(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    path = ensure_checkpoint("base", cache=cache)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    args = _parser().parse_args(["models", "--cache-dir", str(cache)])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "base:" in captured.err


def test_cli_progress_bar_and_registration_in_the_main_cli(server, tmp_path, capsys):
    from glide_studio import cli

    cache = tmp_path / "cache"
    assert cli.main(["download", "clip-text-enc", "--cache-dir", str(cache)]) == 0
    captured = capsys.readouterr()
    assert "clip-text-enc: 100%" in captured.err  # the tqdm bar reached the end
    assert cli.main(["models", "--cache-dir", str(cache), "--no-verify"]) == 0
    assert cli.main(["download", "not-a-model", "--cache-dir", str(cache)]) != 0
    assert "unknown checkpoint 'not-a-model'" in capsys.readouterr().err
