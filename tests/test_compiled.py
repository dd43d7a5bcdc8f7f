"""The compiled twin of a network is built in the background: runs get the eager network until the compiled
one has finished its warm-up, and keep it for good when compiling fails. The editor's engine swaps the twins in
between runs only, runs compiled only the calls the warm-up made, and records whether a run ran compiled.

No test here compiles for real (minutes of inductor): the compilers are stand-ins (conftest fails a test that
reaches torch.compile)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
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


def test_while_a_build_runs_collections_freeze_their_survivors_and_after_it_they_do_not():
    """A collection walking a compile's objects holds the GIL for long: during the build each collection only walks
    what came since the last one."""
    import gc

    seen = {}

    def warm(compiled):
        before = gc.get_freeze_count()
        kept = [[] for _ in range(1000)]  # objects that survive the collection
        gc.collect(0)
        seen["frozen"] = gc.get_freeze_count() - before
        del kept

    background = BackgroundCompile(nn.Linear(2, 2), warm, compiler=Twin, nice=None).start()
    assert background.wait(10) and background.ready
    assert seen["frozen"] >= 1000
    before = gc.get_freeze_count()
    kept = [[] for _ in range(1000)]
    gc.collect(0)
    assert gc.get_freeze_count() == before and kept  # the build is over: collections as usual


def test_the_compile_cache_lives_in_the_given_directory(tmp_path, monkeypatch):
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    use_compile_cache(tmp_path / "inductor")
    assert (tmp_path / "inductor").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"


# --- CompiledUNet: compiled only where warmed, eager for any other call --------------------------------------------

class Doubling(nn.Module):
    """A network whose calls are told apart by shape; `config`/`get_text_emb` as a UNet has them."""

    config = None

    def forward(self, x, scale=None):
        return x * 2


def counting_compiler(calls):
    def compile_fn(forward):
        def compiled(*args, **kwargs):
            calls.append(tuple(args[0].shape))
            return forward(*args, **kwargs)

        return compiled

    return compile_fn


def test_after_warm_up_only_the_warmed_calls_run_compiled():
    from glide_studio.models.compiled import CompiledUNet

    calls = []
    twin = CompiledUNet(Doubling().eval(), compile_fn=counting_compiler(calls))
    assert not twin.training  # as the network it wraps: a ModelSet does not flip it
    twin(torch.ones(2, 3))  # the warm-up's call
    twin.seal()
    assert torch.equal(twin(torch.ones(2, 3)), torch.full((2, 3), 2.0)) and twin.compiled_calls == 1
    # Another shape would make torch.compile compile again, inside a run: it runs eager instead.
    assert torch.equal(twin(torch.ones(4, 3)), torch.full((4, 3), 2.0))
    assert calls == [(2, 3), (2, 3)] and twin.compiled_calls == 1
    with torch.autocast("cpu", torch.bfloat16):  # another autocast mode is another graph too
        twin(torch.ones(2, 3))
    assert calls == [(2, 3), (2, 3)]


def test_a_compiled_call_that_fails_gives_the_eager_result_and_compiled_calls_stop():
    from glide_studio.models.compiled import CompiledUNet

    attempts = []

    def failing(forward):
        def compiled(*args, **kwargs):
            attempts.append(1)
            if len(attempts) > 1:
                raise RuntimeError("inductor kernel crashed")
            return forward(*args, **kwargs)

        return compiled

    twin = CompiledUNet(Doubling(), compile_fn=failing)
    twin(torch.ones(1, 3))
    twin.seal()
    assert torch.equal(twin(torch.ones(1, 3)), torch.full((1, 3), 2.0))  # the eager network answered
    assert "inductor kernel crashed" in twin.broken and twin.compiled_calls == 0
    twin(torch.ones(1, 3))
    assert len(attempts) == 2  # not tried again


# --- The editor's engine: compiled in the background, swapped in between runs, recorded ---------------------------

def gated_compiler(release: threading.Event, made: list):
    """A stand-in for torch.compile that takes until `release` to compile and then gives the eager forward."""
    from glide_studio.models.compiled import CompiledUNet

    def compile_fn(forward):
        assert release.wait(600)  # the test releases it after a whole run, which a loaded machine makes slow
        return forward

    def compiler(unet):
        twin = CompiledUNet(unet, compile_fn=compile_fn)
        made.append(twin)
        return twin

    return compiler


def _engine(reference_dir, monkeypatch, compiler):
    from pipeline_helpers import tiny_model_set

    from glide_studio.app.engine import PipelineEngine
    from glide_studio.runs.compiling import COMPILE_ENV

    monkeypatch.delenv(COMPILE_ENV)  # conftest's switch: these tests pass stand-in compilers
    models = tiny_model_set(reference_dir)

    class TinyEngine(PipelineEngine):
        def load_models(self, request, device) -> None:
            self._model_set = models

    engine = TinyEngine(compiler=compiler)
    engine.set_compile(True)
    return engine


def _ran(engine, request):
    from glide_studio.runs.drain import drain

    return drain(engine.run(request)), engine.context()


def test_runs_are_eager_until_the_twins_are_warm_then_compiled_with_the_same_pixels(reference_dir, monkeypatch):
    from pipeline_helpers import request_for

    from glide_studio.pipelines.request import Mode

    release, made = threading.Event(), []
    engine = _engine(reference_dir, monkeypatch, gated_compiler(release, made))
    request = request_for(Mode.INPAINT, batch=1)
    engine.prepare(request, "cpu")
    eager, context = _ran(engine, request)  # compiling has not finished: the first run never waits for it
    assert not context.compiled and not engine._compiled.build.ready
    steps = engine.run(request)  # a run that starts eager ...
    next(steps)
    release.set()
    assert engine._compiled.build.wait(60) and engine._compiled.build.ready, engine._compiled.error
    for _ in steps:  # ... stays eager after the twins are ready: they are swapped in between runs only
        pass
    assert not engine.context().compiled
    compiled, context = _ran(engine, request)
    assert context.compiled and all(twin.compiled_calls > 0 for twin in made)
    assert np.array_equal(compiled, eager)  # the stand-in compiles to the same arithmetic
    _, context = _ran(engine, request.with_(batch=3))  # calls the warm-up never made: eager, and recorded so
    assert not context.compiled
    engine.set_compile(False)
    _, context = _ran(engine, request)
    assert not context.compiled


def test_a_run_without_the_upsampler_still_gets_the_compiled_base_and_starts_no_new_build(reference_dir):
    import dataclasses

    from pipeline_helpers import request_for, tiny_model_set

    from glide_studio.models.compiled import CompiledUNet
    from glide_studio.pipelines.request import Mode
    from glide_studio.runs.compiling import CompiledModels

    models = tiny_model_set(reference_dir)
    compiled = CompiledModels(lambda unet: CompiledUNet(unet, compile_fn=lambda forward: forward))
    assert compiled.start(models, [request_for(Mode.INPAINT, batch=1)])
    assert compiled.build.wait(60) and compiled.build.ready
    base_only = dataclasses.replace(models, upsample=None, upsample_size=None)  # loading dropped the upsampler
    swapped = compiled.for_run(base_only)
    assert isinstance(swapped.base, CompiledUNet) and swapped.base.unet is models.base and swapped.upsample is None
    assert not compiled.start(base_only, [request_for(Mode.INPAINT, batch=1, upsample_model=None)])
    reloaded = dataclasses.replace(models, upsample=tiny_model_set(reference_dir).upsample)  # loaded again: new
    swapped = compiled.for_run(reloaded)
    assert isinstance(swapped.base, CompiledUNet) and swapped.upsample is reloaded.upsample  # eager, not stale


def test_a_compiler_that_fails_leaves_the_runs_eager_and_working(reference_dir, monkeypatch, caplog):
    from pipeline_helpers import request_for

    from glide_studio.pipelines.request import Mode

    def broken(unet):
        raise RuntimeError("no C++ compiler found")

    engine = _engine(reference_dir, monkeypatch, broken)
    request = request_for(Mode.INPAINT, batch=1)
    engine.prepare(request, "cpu")
    assert engine._compiled.build.wait(30) and "no C++ compiler" in engine._compiled.error
    for _ in range(2):
        images, context = _ran(engine, request)
        assert images.shape[0] == 1 and not context.compiled
    assert sum("no C++ compiler" in record.getMessage() for record in caplog.records) == 1  # logged once


def test_no_compile_under_the_tests_switch_nor_for_networks_it_does_not_pay_for(reference_dir, monkeypatch):
    from pipeline_helpers import request_for

    from glide_studio.pipelines.request import Mode
    from glide_studio.runs.compiling import COMPILE_ENV

    made = []
    engine = _engine(reference_dir, monkeypatch, gated_compiler(threading.Event(), made))
    engine.prepare(request_for(Mode.INPAINT, base_model="base-inpaint", upsample_model="upsample-inpaint"), "cpu")
    assert engine._compiled is None  # the full-size GLIDE networks: never
    monkeypatch.setenv(COMPILE_ENV, "0")
    engine.prepare(request_for(Mode.INPAINT), "cpu")
    assert engine._compiled is None and made == []


def test_the_compiled_flag_survives_the_record_and_repeat_says_it_runs_eager(tmp_path, fake_models, capsys):
    from glide_studio import cli
    from glide_studio.app.starter import starter_scene
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.png_metadata import read_record, write_png
    from glide_studio.runs.codec import decode, encode
    from glide_studio.runs.record import RunContext, RunRecord

    record = RunRecord(Request(mode=Mode.GENERATE, upsample_model=None), RunContext("cpu", "fp32", compiled=True))
    assert decode(RunRecord, encode(record)).context.compiled
    assert not decode(RunContext, {"device": "cpu"}).compiled  # records written before the field: eager
    path = tmp_path / "compiled.png"
    write_png(path, starter_scene(64), record)
    assert read_record(path).record.context.compiled
    assert cli.main(["repeat", str(path), "-o", str(tmp_path / "again.png")]) == 0
    assert "ran compiled networks" in capsys.readouterr().err
    again = read_record(tmp_path / "again.png").record
    assert not again.context.compiled  # what the repeat did: eager


def test_the_edit_menu_turns_compiling_on_and_off_and_the_choice_is_kept(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from window_helpers import open_window

    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.app.settings import COMPILE_DEFAULT, Preferences
    from glide_studio.app.starter import starter_scene

    engine = FakeEngine()
    window = open_window(qtbot, tmp_path, engine, starter_scene(64), show=False)
    assert engine.compile is COMPILE_DEFAULT and window.compile_action.isChecked() is COMPILE_DEFAULT
    prepared = len(engine.prepared)
    window.compile_action.trigger()
    assert engine.compile is not COMPILE_DEFAULT
    window.compile_action.trigger()
    assert engine.compile is COMPILE_DEFAULT
    if COMPILE_DEFAULT:  # turned on while idle: the networks are prepared, and compiled after that
        qtbot.waitUntil(lambda: len(engine.prepared) > prepared, timeout=5000)
    window.compile_action.trigger()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert Preferences(settings).compile_networks() is not COMPILE_DEFAULT
    again = FakeEngine()
    open_window(qtbot, tmp_path, again, starter_scene(64), show=False)
    assert again.compile is not COMPILE_DEFAULT


def test_the_first_compile_runs_in_a_child_process_with_the_same_runs(reference_dir, monkeypatch, tmp_path):
    """The editor compiles first in a child process at the lowest priority (a low-priority thread here would hold
    the GUI's GIL); the child gets the networks and the warm-up runs, then the twins are built here from the
    cache it filled. A child that fails leaves the runs eager."""
    import json
    import subprocess

    from pipeline_helpers import request_for, tiny_model_set

    from glide_studio.models.compiled import CompiledUNet
    from glide_studio.pipelines.request import Mode, Request
    from glide_studio.runs import compiling
    from glide_studio.runs.codec import decode

    children = []

    class Child:
        """What subprocess.Popen starts: the first child succeeds, the next fails as a missing compiler would."""

        def __init__(self, command, **kwargs):
            self.command, self.returncode = command, None
            children.append(self)

        def communicate(self, spec):
            self.spec = json.loads(spec)
            self.returncode = 0 if len(children) == 1 else 3
            return None, "" if self.returncode == 0 else "inductor: g++ not found"

        def poll(self):
            return self.returncode

    monkeypatch.setattr(subprocess, "Popen", Child)
    models = tiny_model_set(reference_dir)
    runs = [request_for(Mode.INPAINT, batch=2).without_unused_inputs(), request_for(Mode.INPAINT, batch=1)]
    made = []

    def stand_in(unet):
        made.append(unet)
        return CompiledUNet(unet, compile_fn=lambda forward: forward)

    compiled = compiling.CompiledModels(stand_in, cache_dir=tmp_path, out_of_process=True)
    compiled.start(models, runs)  # the child succeeds: the twins are built here after it
    assert compiled.build.wait(60) and compiled.build.ready and compiled.error is None and len(made) == 2
    first = children[0]
    again = compiling.CompiledModels(stand_in, cache_dir=tmp_path / "other", out_of_process=True)
    again.start(models, runs)  # the child fails: nothing is built here, the runs stay eager
    assert again.build.wait(60) and not again.build.ready and "g++ not found" in again.error and len(made) == 2
    assert again.for_run(models) is models
    children.clear()
    once_more = compiling.CompiledModels(stand_in, cache_dir=tmp_path, out_of_process=True)
    once_more.start(models, runs)  # the first child's runs are in the cache: no child this time
    assert once_more.build.wait(60) and once_more.build.ready and children == []
    command, spec = first.command, first.spec
    assert command[1:] == ["-m", "glide_studio.runs.compiling"] and spec["cache"] == str(tmp_path)
    assert spec["precision"] == "fp32" and spec["device"] == "cpu" and spec["base_size"] == models.base_size
    assert [decode(Request, run) for run in spec["runs"]] == [run.with_(image=None, mask=None) for run in runs]



def test_a_compile_child_still_running_when_the_editor_exits_is_stopped():
    import subprocess
    import sys

    from glide_studio.runs import compiling

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    compiling._stop(child)  # what the exit handler does
    assert child.wait(10) != 0
    compiling._stop(child)  # an ended child is left alone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_compile_child_dies_with_an_editor_that_is_killed(tmp_path):
    import subprocess

    script = tmp_path / "editor.py"
    script.write_text(
        "import os, subprocess, sys, threading, time\n"
        "from glide_studio.runs import compiling\n"
        "def go():\n"
        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                             preexec_fn=compiling._child_setup)\n"
        "    print(child.pid, flush=True)\n"
        "    child.wait()\n"
        "threading.Thread(target=go, daemon=True).start()\n"
        "time.sleep(1.5)\n"
        "os._exit(0)\n")
    editor = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    pid = int(editor.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            break  # gone
        if state == "Z":
            break  # dead, waiting for init to reap it
        time.sleep(0.1)
    else:
        pytest.fail("the compile child outlived the editor")
