"""The seam suite's long-run streamer (benchmarks/seams_stream.py): per-task JSON lines from several processes, and
from runs of another version of the suite that measured more, become one eval_demo result; no model runs here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import seams_stream  # noqa: E402


def _row(kind: str, task: int, final: float, **more) -> dict:
    measures = {"base": 1.0, "upsample": 2.0, "final": final, "final, not harmonised": final + 1,
                "final, every measured pixel": final, "drew an object": float(task % 2), "seconds": 9.0}
    return {"kind": kind, "task": task, **measures, **more}


def test_lines_from_several_files_make_one_result_over_the_measures_every_task_has(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(json.dumps(_row("flat", k, float(k), **{"an older measure": 5.0})) for k in range(3)))
    second.write_text("\n".join(json.dumps(_row("flat", k, float(k))) for k in range(3, 6)))
    out = tmp_path / "part.json"
    seams_stream.main(["part", str(first), str(second), "--exact", "--json", str(out)])
    result = json.loads(out.read_text())["seams_flat_exact"]
    assert result["tasks"] == 6 and result["task_ids"] == list(range(6))
    assert result["median"] == 2.5 and result["drew an object, share"] == 0.5
    assert "an older measure, median" not in result  # only three of the six tasks measured it
    assert "seams_cut_exact" not in json.loads(out.read_text())


def test_a_run_started_again_skips_the_tasks_its_file_has(tmp_path):
    done = tmp_path / "done.jsonl"
    done.write_text(json.dumps(_row("cut", 4, 1.0)) + "\n")
    assert seams_stream._done(done) == {("cut", 4)}
    assert seams_stream._done(tmp_path / "none.jsonl") == set()
