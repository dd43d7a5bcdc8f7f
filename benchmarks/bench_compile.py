"""torch.compile on the demo base network (bf16, the app's CPU precision): how long the first compile takes, how
long a second process takes with the on-disk cache warm, and the per-call time compiled against eager, for the
calls a run makes with the levers on (the whole network and feature reuse's shallow branch, CFG batch 2).

    PYTHONPATH=. nice -n 19 python benchmarks/bench_compile.py --cache /tmp/glide-inductor [--calls full,shallow]

Run it twice: the second run's compile time is the cached start a second session of the app would see.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_levers import best_seconds

from glide_studio.models.compiled import CompiledUNet, use_compile_cache
from glide_studio.models.unet import ReusedFeatures
from glide_studio.pipelines.levers import SHALLOW_BLOCKS
from glide_studio.pipelines.request import Request
from glide_studio.pipelines.stages import text_kwargs
from glide_studio.runs.models import load_model_set


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "glide-studio" / "inductor"))
    parser.add_argument("--calls", default="plain,full,shallow")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    use_compile_cache(Path(args.cache))
    models = load_model_set(Request(upsample_model=None), "cpu", "auto")
    model, precision = models.base, models.precision
    x = torch.randn(2, 3, 64, 64)
    t = torch.tensor([500, 500])
    kwargs = text_kwargs(model, "a red circle", 1, "cpu", guided=True, precision=precision)
    features = ReusedFeatures(SHALLOW_BLOCKS)
    with torch.no_grad(), precision.autocast():
        model(x, t, reuse=features, **kwargs)
    calls = {
        "plain": lambda net: net(x, t, **kwargs),
        "full": lambda net: net(x, t, reuse=ReusedFeatures(SHALLOW_BLOCKS), **kwargs),
        "shallow": lambda net: net(x, t, reuse=features, **kwargs),
    }
    compiled = CompiledUNet(model)
    print(f"demo base network, {precision.describe()}, threads {torch.get_num_threads()}, cache {args.cache}")
    for name in args.calls.split(","):
        call = calls[name]
        started = time.perf_counter()
        with torch.no_grad(), precision.autocast():
            call(compiled)
        first = time.perf_counter() - started

        def eager(call=call):
            with precision.autocast():
                return call(model)

        def fast(call=call):
            with precision.autocast():
                return call(compiled)

        eager_s, compiled_s = best_seconds(eager, precision.device, args.repeats), best_seconds(fast, precision.device,
                                                                                               args.repeats)
        print(f"{name:<8} first call (compile) {first:7.1f} s; per call eager {eager_s * 1e3:7.1f} ms, compiled "
              f"{compiled_s * 1e3:7.1f} ms: {eager_s / compiled_s:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
