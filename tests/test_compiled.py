"""The compiled twin of a network is built in the background: runs get the eager network until the compiled
one has finished its warm-up, and keep it for good when compiling fails."""

from __future__ import annotations

import os
import threading

import torch
from torch import nn

from glide_studio.models.compiled import BackgroundCompile, use_compile_cache


class Twin(nn.Module):
    """What a compiler would return: the same network under another object."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network(x)


def test_runs_get_the_eager_network_until_the_compiled_one_is_warm():
    network = nn.Linear(2, 2)
    release, warmed = threading.Event(), []

    def warm(compiled):
        assert release.wait(10)
        warmed.append(compiled(torch.zeros(1, 2)))

    background = BackgroundCompile(network, warm, compiler=Twin).start()
    assert background.current() is network and not background.ready  # the compile never delays a run
    release.set()
    assert background.wait(10)
    assert background.ready and isinstance(background.current(), Twin) and background.current().network is network
    assert len(warmed) == 1 and background.error is None


def test_a_compiler_that_fails_leaves_the_eager_network_and_says_why():
    network = nn.Linear(2, 2)

    def broken(_):
        raise RuntimeError("no C++ compiler found")

    background = BackgroundCompile(network, lambda compiled: None, compiler=broken).start()
    assert background.wait(10)
    assert background.current() is network and not background.ready
    assert "no C++ compiler found" in background.error


def test_a_warm_up_that_fails_also_leaves_the_eager_network():
    network = nn.Linear(2, 2)

    def warm(compiled):
        compiled(torch.zeros(1, 3))  # the wrong width: the compiled call raises

    background = BackgroundCompile(network, warm, compiler=Twin).start()
    assert background.wait(10)
    assert background.current() is network and background.error


def test_the_compile_cache_lives_in_the_given_directory(tmp_path, monkeypatch):
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    use_compile_cache(tmp_path / "inductor")
    assert (tmp_path / "inductor").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
