"""The levers benchmark's code path on tiny networks (its figures are the benchmark's business, not a test's):
every lever is priced from the calls the shipped StageDenoiser makes, and the CUDA entry exits cleanly here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_levers  # noqa: E402
import bench_levers_cuda  # noqa: E402

from glide_studio.pipelines.request import Request  # noqa: E402


def test_stage_calls_follow_the_reuse_policy_and_the_guidance_window():
    request = Request(reuse_interval=3, guidance_stop=0.3, steps=25)
    calls = bench_levers.stage_calls(bench_levers.TINY, request, True, 25, upsampler=False)
    assert len(calls) == 25
    # The window's 13 top steps run the CFG batch of 2, the 12 below noise level 0.3 the conditional row alone.
    assert [rows for _, rows in calls] == [2] * 13 + [1] * 12
    # Full every third step, and again where the batch changes.
    assert [kind for kind, _ in calls[:14]] == ["full", "shallow", "shallow"] * 4 + ["full", "full"]
    exact = bench_levers.stage_calls(bench_levers.TINY, request.with_(reuse_interval=1, guidance_stop=0.0), True, 25,
                                     upsampler=False)
    assert exact == [("full", 2)] * 25


def test_the_upsamplers_calls_reuse_only_above_its_stop():
    request = Request(upsample_reuse_interval=3, upsample_reuse_stop=0.2, upsample_steps=15, upsample_strength=1.0)
    calls = bench_levers.stage_calls(bench_levers.TINY, request, False, 15, upsampler=True)
    # Noise levels 1, .83, .75, .67, .57, .46, .33, .21 are at or above 0.2; the 7 steps below it run in full.
    assert [kind for kind, _ in calls] == ["full", "shallow", "shallow"] * 2 + ["full", "shallow"] + ["full"] * 7
    assert {rows for _, rows in calls} == {1}


def test_the_benchmark_runs_on_tiny_networks(capsys):
    assert bench_levers.main(["--tiny", "--repeats", "1", "--check", "--int8", "--reuse", "2",
                              "--guidance-stop", "0.3"]) == 0
    out = capsys.readouterr().out
    for line in ("fp32 eager", "bf16 + reuse", "bf16 + window", "bf16 + int8", "bf16 + all", "measured over the real",
                 "flow: default inpaint"):
        assert line in out


def test_saved_call_costs_price_other_settings_without_timing(tmp_path, capsys, monkeypatch):
    saved = tmp_path / "costs.json"
    assert bench_levers.main(["--tiny", "--repeats", "1", "--save-costs", str(saved)]) == 0
    timed = capsys.readouterr().out
    monkeypatch.setattr(bench_levers, "call_costs", None)  # nothing may be timed from here on
    assert bench_levers.main(["--tiny", "--costs", str(saved)]) == 0
    again = capsys.readouterr().out
    figures = lambda out: [line for line in out.splitlines() if "s/step" in line or line.startswith("  call ")]  # noqa: E731
    assert figures(timed) == figures(again) != []  # the same figures under the same settings
    assert bench_levers.main(["--tiny", "--costs", str(saved), "--upsample-steps", "8", "--upsample-reuse", "2"]) == 0
    fewer = capsys.readouterr().out
    assert "8 base + " not in fewer and "+ 8 upsample steps" in fewer and fewer != again


def test_the_upsamplers_strength_starts_its_calls_part_way_down():
    calls = bench_levers.stage_chain(bench_levers.TINY, Request(upsample_strength=0.4), 5, upsampler=True)
    assert calls.num_steps == 5 and int(calls.diffusion.timestep_map[-1]) <= 400


def test_the_region_lever_is_timed_on_the_typical_tasks_region(capsys):
    assert bench_levers.main(["--tiny", "--repeats", "1", "--cases", "upsample", "--upsample-context", "4"]) == 0
    out = capsys.readouterr().out
    assert "bf16 + region" in out and "% of the pixels)" in out
    region = bench_levers.typical_region(32, 256, 32)
    assert region is not None and all(part.start % 32 == 0 and part.stop % 32 == 0 for part in region)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the CUDA benchmark really runs")
def test_the_cuda_benchmark_says_there_is_no_gpu_and_exits_cleanly(capsys):
    assert bench_levers_cuda.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out
