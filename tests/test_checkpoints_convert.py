"""Safe loading of .pt / .safetensors and the .pt -> safetensors conversion."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from glide_studio.checkpoints import (
    CheckpointFormatError,
    IntegrityError,
    MissingWeightsError,
    UnsafeCheckpointError,
    convert_to_safetensors,
    load_state_dict_file,
    sha256_file,
    verify,
)
from glide_studio.checkpoints.integrity import read_record, write_record


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "input_blocks.0.0.weight": torch.randn(8, 3, 3, 3, generator=gen),
        "input_blocks.0.0.bias": torch.randn(8, generator=gen),
        "label_emb.weight": torch.arange(12, dtype=torch.int64).reshape(3, 4),
    }


def assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pt_and_safetensors_load_the_same_tensors(tmp_path):
    state = small_state()
    torch.save(state, tmp_path / "a.pt")
    save_file(state, str(tmp_path / "a.safetensors"))
    assert_same(load_state_dict_file(tmp_path / "a.pt"), state)
    assert_same(load_state_dict_file(tmp_path / "a.safetensors"), state)


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"weight": torch.ones(2), "evil": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*evil.pt.*could run code"):
        load_state_dict_file(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("junk.pt", b"this is not a checkpoint at all", "not a readable PyTorch checkpoint"),
        ("junk.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{broken", "not a readable safetensors"),
        ("weights.txt", b"", "unsupported weights file type"),
    ],
)
def test_unreadable_files_give_format_errors(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointFormatError, match=message):
        load_state_dict_file(tmp_path / name)


def test_truncated_pt_is_a_format_error(tmp_path):
    torch.save(small_state(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError):
        load_state_dict_file(tmp_path / "cut.pt")


def test_non_state_dicts_are_refused(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointFormatError, match="holds a list"):
        load_state_dict_file(tmp_path / "list.pt")
    torch.save({"model": {"w": torch.ones(1)}, "step": 3}, tmp_path / "nested.pt")
    with pytest.raises(CheckpointFormatError, match="not a flat state dict"):
        load_state_dict_file(tmp_path / "nested.pt")


def test_missing_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        load_state_dict_file(tmp_path / "absent.safetensors")


def test_conversion_round_trip_records_hash(tmp_path):
    state = small_state()
    torch.save(state, tmp_path / "base.pt")
    out = convert_to_safetensors(tmp_path / "base.pt")
    assert out == tmp_path / "base.safetensors"
    assert_same(load_state_dict_file(out), state)
    record = read_record(out)
    assert record.sha256 == sha256_file(out) and record.size == out.stat().st_size
    assert verify(out) is True
    assert not (tmp_path / "base.safetensors.tmp").exists()


def test_conversion_handles_tensors_sharing_memory(tmp_path):
    weight = torch.randn(4, 4)
    torch.save({"a": weight, "tied": weight, "row": weight[1]}, tmp_path / "tied.pt")
    out = convert_to_safetensors(tmp_path / "tied.pt", tmp_path / "tied-out.safetensors")
    loaded = load_state_dict_file(out)
    assert torch.equal(loaded["a"], weight) and torch.equal(loaded["tied"], weight)
    assert torch.equal(loaded["row"], weight[1])


def test_load_checks_a_recorded_hash(tmp_path):
    torch.save(small_state(), tmp_path / "m.pt")
    path = tmp_path / "m.pt"
    write_record(path, sha256_file(path), path.stat().st_size)
    load_state_dict_file(path)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="recorded sha256"):
        load_state_dict_file(path)
    with pytest.raises(IntegrityError):
        convert_to_safetensors(path)
    assert not (tmp_path / "m.safetensors").exists()
