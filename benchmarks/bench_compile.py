"""torch.compile of the demo networks as the editor does it (glide_studio.runs.compiling.CompiledModels: both
UNets, warmed by the runs the GUI's defaults make: 2 candidates, 1 candidate, a live-painting update), measured:

- the compile: seconds until the twins are ready, and how many graphs; with an empty --cache that is a first
  start (in the editor: its child process's work), run the same command again for a second start (a fresh
  process, inductor's on-disk cache warm: what the editor then does in its own process);
- whether it delays runs meanwhile: an eager full inpaint before the compile and while it goes on;
- per call, compiled against eager, for the very calls a run makes (recorded from a compiled run, replayed);
- whole runs: eval_demo's timed full inpaint (256 px picture, base + upsample, one candidate) exact eager (as
  weights/eval_demo.json measured it: its ratio to that file's figure says how loaded this machine is now), at
  the lever defaults eager, and at the defaults compiled; and a live-painting update eager against compiled;
  all interleaved round by round, medians; the compiled run's pixels against the eager run's (max / mean).

    PYTHONPATH=. nice -n 5 python benchmarks/bench_compile.py --cache /tmp/glide-inductor [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from glide_studio.app.live import live_request
from glide_studio.models.compiled import CompiledUNet
from glide_studio.pipelines.request import Request
from glide_studio.runs.compiling import CompiledModels
from glide_studio.runs.drain import drain
from glide_studio.runs.models import load_model_set
from glide_studio.runs.streams import run

EVAL_DEMO = Path(__file__).resolve().parents[1] / "weights" / "eval_demo.json"
EXACT = {"reuse_interval": 1, "guidance_stop": 0.0, "guidance_start": 1.0, "upsample_reuse_interval": 1}


def load() -> str:
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def eval_demo_request() -> Request:
    """eval_demo.time_full_inpaint's request (its task, a 256 px picture), at the current defaults."""
    import eval_demo

    rng = np.random.default_rng(4 * eval_demo.SEED_OFFSET)
    image, box, *_ = eval_demo._removed_object_task(rng)
    picture = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))
    mask = np.kron(box, np.ones((4, 4), dtype=np.uint8))
    return Request(mode=eval_demo.Mode.INPAINT, prompt="a red star", image=picture, mask=mask)


def timed_run(models, request) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    images = drain(run(models, request))
    return images, time.perf_counter() - started


def graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0))


class Recorder:
    """Keeps one example of each distinct call a twin gets (its signature), to replay it eager and compiled."""

    def __init__(self, twin: CompiledUNet, stage: str):
        self.twin, self.stage, self.examples = twin, stage, {}
        original = twin.forward

        def forward(*args, **kwargs):
            from glide_studio.models.compiled import call_signature

            key = call_signature(args, kwargs)
            if key not in self.examples:
                reuse, kept = kwargs.get("reuse"), dict(kwargs)
                kind = "plain" if reuse is None else ("full" if reuse.deep is None else "shallow")
                if reuse is not None:
                    kept["reuse"] = copy.copy(reuse)  # a full call fills it in: keep it as it came
                self.examples[key] = (f"{stage} {kind} rows {args[0].shape[0]}", args, kept)
            return original(*args, **kwargs)

        twin.forward = forward


def replay(example) -> tuple:
    """A fresh copy of a recorded call's arguments (a full reuse call fills its ReusedFeatures)."""
    label, args, kwargs = example
    return label, args, {key: copy.copy(value) if key == "reuse" else value for key, value in kwargs.items()}


def per_call(twins: dict, examples: list, repeats: int) -> None:
    best: dict[tuple[str, str], float] = {}
    with torch.no_grad():
        for _ in range(repeats + 1):
            for stage, example in examples:
                twin = twins[stage]
                for name, network in (("eager", twin.unet), ("compiled", twin)):
                    label, args, kwargs = replay(example)
                    calls = twin.compiled_calls
                    with torch.autocast("cpu", torch.bfloat16, enabled=twin.dtype == torch.bfloat16):
                        started = time.perf_counter()
                        network(*args, **kwargs)
                    seconds = time.perf_counter() - started
                    assert name == "eager" or twin.compiled_calls > calls, f"{label}: the replay ran eager"
                    best[(label, name)] = min(best.get((label, name), math.inf), seconds)
    for _stage, example in examples:
        label = example[0]
        eager, compiled = best[(label, "eager")], best[(label, "compiled")]
        print(f"  {label:<26} eager {eager * 1e3:8.1f} ms   compiled {compiled * 1e3:8.1f} ms   "
              f"{eager / compiled:5.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "glide-studio" / "inductor"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (eval_demo.json's figure: 2)")
    parser.add_argument("--candidates", type=int, default=2, help="the GUI's candidates, for the warm-up")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--stand-in", action="store_true", help="no real compile (a quick check of this script)")
    parser.add_argument("--compile-nice", type=int, default=-1,
                        help="the compile thread's nice (-1: this process's own). The editor compiles in a child "
                             "process at nice 19 first and then builds here from the cache: run this twice with one "
                             "--cache, the second run's compile is the editor's in-process part")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures: dict = {"threads": args.threads, "cache": args.cache}
    models = load_model_set(Request(), "cpu", "auto")
    print(f"demo networks, {models.precision.describe()}, threads {torch.get_num_threads()}, cache {args.cache} "
          f"({'warm' if Path(args.cache).is_dir() and any(Path(args.cache).iterdir()) else 'empty'}); {load()}")
    full = eval_demo_request()
    drain(run(models, full.with_(steps=2, upsample_steps=2)))  # eager first-call costs out of the way
    _, before = timed_run(models, full)

    gui = Request(batch=args.candidates)
    warm_runs = [gui, gui.with_(batch=1), live_request(gui)]  # as the editor's engine warms them
    if args.stand_in:  # checks this script in seconds: "compiled" is the eager forward
        compiled = CompiledModels(lambda unet: CompiledUNet(unet, compile_fn=lambda forward: forward))
    else:
        compiled = CompiledModels(cache_dir=Path(args.cache), nice=None if args.compile_nice < 0 else args.compile_nice)
    started = time.perf_counter()
    compiled.start(models, warm_runs)
    _, during = timed_run(models, full)
    compiled.build.wait()
    figures["compile_seconds"] = compile_seconds = time.perf_counter() - started
    figures["graphs"] = graphs()
    if compiled.error:
        print(f"compiling failed: {compiled.error}")
        return 1
    print(f"compile (both UNets, {len(warm_runs)} warm-up runs, compile thread nice {args.compile_nice}): "
          f"{compile_seconds:.1f} s, {graphs()} graphs; {load()}")
    print(f"eager full inpaint before the compile {before:.2f} s, while it ran {during:.2f} s "
          f"({during / before:.2f}x)")
    figures["eager_before_s"], figures["eager_during_s"] = before, during

    fast = compiled.for_run(models)
    twins = {"base": fast.base, "upsample": fast.upsample}
    recorders = [Recorder(twin, stage) for stage, twin in twins.items()]
    drain(run(fast, full))
    drain(run(fast, live_request(full)))
    examples = [(recorder.stage, example) for recorder in recorders for example in recorder.examples.values()]
    for recorder in recorders:
        del recorder.twin.forward  # back to the class's forward
    print("per call, best of", args.repeats, "(the calls the runs above made):")
    per_call(twins, examples, args.repeats)

    variants = {"exact eager": (models, full.with_(**EXACT)), "defaults eager": (models, full),
                "defaults compiled": (fast, full), "live eager": (models, live_request(full)),
                "live compiled": (fast, live_request(full))}
    times: dict[str, list[float]] = {name: [] for name in variants}
    images: dict[str, np.ndarray] = {}
    for seed in range(args.repeats):
        for name, (networks, request) in variants.items():
            before_calls = sum(twin.compiled_calls for twin in twins.values())
            result, seconds = timed_run(networks, request.with_(seed=seed))
            if "compiled" in name:
                assert sum(twin.compiled_calls for twin in twins.values()) > before_calls, "ran eager"
            times[name].append(seconds)
            if seed == 0:
                images[name] = result.astype(np.int16)
    medians = {name: statistics.median(values) for name, values in times.items()}
    figures["medians_s"] = medians
    print(f"whole runs, medians of {args.repeats} (interleaved); {load()}")
    for name, seconds in medians.items():
        print(f"  {name:<18} {seconds:7.2f} s   ({', '.join(f'{value:.2f}' for value in times[name])})")
    print(f"  full inpaint: compiled {medians['defaults eager'] / medians['defaults compiled']:.2f}x the eager "
          f"defaults; live update: {medians['live eager'] / medians['live compiled']:.2f}x")
    for kind in ("defaults", "live"):
        difference = np.abs(images[f"{kind} compiled"] - images[f"{kind} eager"])
        print(f"  {kind}: compiled vs eager pixels (uint8) max {difference.max()}, mean {difference.mean():.2f}")
        figures[f"{kind}_pixel_dev"] = {"max": int(difference.max()), "mean": float(difference.mean())}
    recorded = json.loads(EVAL_DEMO.read_text()).get("timing", {})
    if recorded.get("full_inpaint_seconds_median") and recorded.get("threads") == args.threads:
        factor = medians["exact eager"] / recorded["full_inpaint_seconds_median"]
        scaled = ", ".join(f"{name} {medians[name] / factor:.2f} s" for name in medians if name != "exact eager")
        print(f"  eval_demo.json's full inpaint (exact path, idle machine) "
              f"{recorded['full_inpaint_seconds_median']:.2f} s; exact eager here now {medians['exact eager']:.2f} s "
              f"= {factor:.2f}x it (this machine's load now); scaled by that: {scaled}")
        figures["load_factor"] = factor
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
