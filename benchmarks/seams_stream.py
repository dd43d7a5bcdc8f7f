"""The seam suite (eval_seams.py) task by task, for long runs on a shared machine: each task's figures are
appended to a JSON-lines file as soon as it is measured, so a run that is stopped keeps them all, and a run
started again goes on after the last task it finds there. `part` turns such files into the result file of
`eval_demo.py` (the `seams_*` suites), for `eval_demo.py --merge`.

    python benchmarks/seams_stream.py run --kinds straddle,cut --first 20 --count 200 --exact --jsonl after.jsonl
    python benchmarks/seams_stream.py part after.jsonl --exact --json part.json
    python benchmarks/eval_demo.py --merge part.json other_part.json --json weights/eval_seams.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import eval_seams  # beside this script
import torch

from glide_studio.pipelines import Request
from glide_studio.runs.models import load_model_set


def _done(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    return {(row["kind"], row["task"]) for row in map(json.loads, path.read_text().splitlines()) if row}


def run(args) -> None:
    torch.set_num_threads(args.threads)
    models = load_model_set(Request(), "cpu", "fp32")
    suffix = "_exact" if args.exact else ""
    out = Path(args.jsonl)
    done = _done(out)
    with out.open("a") as f:
        for k in range(args.first, args.first + args.count):  # tasks outer: every kind advances together
            for kind in args.kinds.split(","):
                if (kind, k) in done:
                    continue
                started = time.perf_counter()
                fields = eval_seams.SUITES[f"seams_{kind}{suffix}"][1]
                errors = eval_seams.seam_task_errors(models, kind, k, Request.steps, Request.guidance_scale, **fields)
                row = {"kind": kind, "task": k, **errors, "seconds": time.perf_counter() - started}
                f.write(json.dumps(row) + "\n")
                f.flush()


def part(args) -> None:
    rows = {}
    for path in args.jsonl:
        for row in map(json.loads, Path(path).read_text().splitlines()):
            rows[(row.pop("kind"), row.pop("task"))] = row
    suffix = "_exact" if args.exact else ""
    result = {"tasks_per_mode": 0, "steps": Request.steps, "guidance_scale": Request.guidance_scale,
              "strength": Request.strength, "precision": "fp32", "sampler": str(Request.sampler)}
    for kind in eval_seams.KINDS:
        tasks = sorted(k for (found, k) in rows if found == kind)
        if tasks:
            per_task = [{key: value for key, value in rows[(kind, k)].items() if key != "seconds"} for k in tasks]
            result[f"seams_{kind}{suffix}"] = {**eval_seams.summary(per_task), "task_ids": tasks}
    result["tasks_per_mode"] = min(value["tasks"] for value in result.values() if isinstance(value, dict))
    Path(args.json).write_text(json.dumps(result, indent=1))
    for suite, value in result.items():
        if isinstance(value, dict):
            eval_seams.print_rows(suite, {key: v for key, v in value.items() if key != "task_ids"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="measure tasks, appending to --jsonl")
    running.add_argument("--kinds", default=",".join(eval_seams.KINDS))
    running.add_argument("--first", type=int, default=0)
    running.add_argument("--count", type=int, default=20)
    running.add_argument("--threads", type=int, default=1)
    running.add_argument("--exact", action="store_true", help="the speed levers off at the reference steps (_exact)")
    running.add_argument("--jsonl", required=True)
    parting = commands.add_parser("part", help="JSON-lines files -> one eval_demo result file")
    parting.add_argument("jsonl", nargs="+")
    parting.add_argument("--exact", action="store_true", help="name the suites seams_*_exact")
    parting.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    else:
        part(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
