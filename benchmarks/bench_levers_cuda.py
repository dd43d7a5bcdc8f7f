"""The speed levers on CUDA: bench_levers.py with fp16 weights (the reference's convert_to_fp16 rule) instead of
bf16, against fp32 eager on the same GPU, with the GPU synchronised around every timed call.

    PYTHONPATH=. python benchmarks/bench_levers_cuda.py [--cases base,upsample] [--repeats 5] [--check] [--tiny]

Without a CUDA device it says so and exits cleanly (status 0); the code path itself is the CPU one's
(`bench_levers.main(["--device", "cpu", ...])`), which tests/test_bench_levers.py runs.
"""

from __future__ import annotations

import sys

import torch
from bench_levers import main as bench_main


def main(argv: list[str] | None = None) -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here (torch.cuda.is_available() is False): nothing to measure; "
              "run this on a machine with a GPU")
        return 0
    return bench_main(["--device", "cuda", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
