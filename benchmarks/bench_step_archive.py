"""What keeping the steps of past runs costs: disk per run, the writer thread's time per run, and what the GUI
thread feels while a run's steps are written (journalling strokes and a heartbeat meanwhile), with the steps in a
file of their own beside the journal (as the app keeps them) and, side by side, inside the journal file itself.

A run is the default full run's shape: --base-steps base steps at 64 px and --upsample-steps upsampler steps at
256 px, --candidates rows, each step with its preview and its DPM-Solver++(2M) state (x, the previous x0, the
noise generators' state; the upsampler's states share the base result). The states are random tensors of those
shapes (states do not compress, so their content does not matter). The GUI thread appends a small journal event
every --interval ms (a stroke's transaction) and a QTimer heartbeat ticks; both are measured with the archive
idle and while --runs runs are written to each place, one after the other in one process. Figures:

    on disk per run          what the archive's blobs grew by per run (MB)
    writer per run           wall time of the writer thread per run
    stroke transaction       the GUI thread's journal append, median / p99 / max ms, idle vs while archiving
    worst GUI stall          the longest gap between heartbeat ticks beyond the interval, idle vs archiving

Run from the repository root:  PYTHONPATH=. python benchmarks/bench_step_archive.py [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench_stats import median_p99_max  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--base-steps", type=int, default=25)
    parser.add_argument("--upsample-steps", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--interval", type=float, default=5.0, help="stroke and heartbeat period, ms")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()

    import numpy as np
    import torch
    from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QTimer

    from glide_studio.app.journal import Journal
    from glide_studio.app.step_archive import StepArchive, TimelineStep
    from glide_studio.diffusion import NoiseState, SamplerState
    from glide_studio.pipelines.state import RunState

    app = QCoreApplication.instance() or QCoreApplication([])
    folder = tempfile.mkdtemp(prefix="bench-steps-")
    journal = Journal(os.path.join(folder, "journal.sqlite"))
    rows, generator = args.candidates, torch.Generator().manual_seed(0)
    rng = bytes(np.random.default_rng(0).integers(0, 256, 5056 * rows, dtype=np.uint8))

    def run_steps(run: int) -> list[TimelineStep]:
        steps, base_result = [], np.random.default_rng(run).integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8)
        total = args.base_steps + args.upsample_steps
        for index in range(total):
            upsample = index >= args.base_steps
            side, stage = (256, "upsample") if upsample else (64, "base")
            x = torch.randn((rows, 3, side, side), generator=generator)
            sampler = SamplerState("dpm++2m", "chain", x, total - index - 2, index + 1,
                                   NoiseState("generator", index + 1, rng, "cpu", rows),
                                   torch.randn(x.shape, generator=generator), 0.1)
            state = RunState("inpaint", stage, int(upsample), sampler, base_result if upsample else None,
                             level=1 - (index + 1) / total)
            preview = np.random.default_rng(index).integers(0, 256, (rows, side, side, 3), dtype=np.uint8)
            steps.append(TimelineStep(index, total, stage, preview, state))
        return steps

    appends: list[float] = []
    gaps: list[float] = []
    clock, beat = QElapsedTimer(), QElapsedTimer()
    clock.start()

    def stroke() -> None:
        start = time.perf_counter()
        journal.append("layer", {"rect": [0, 0, 40, 40], "patch": "x" * 64})
        appends.append((time.perf_counter() - start) * 1000)

    def tick() -> None:
        gaps.append(max(0.0, beat.restart() - args.interval))

    timers = []
    for slot in (stroke, tick):
        timer = QTimer()
        timer.setInterval(round(args.interval))
        timer.timeout.connect(slot)
        timers.append(timer)

    def measure(seconds: float | None, work=None) -> tuple[list[float], list[float]]:
        appends.clear()
        gaps.clear()
        beat.start()
        for timer in timers:
            timer.start()
        loop = QEventLoop()
        if work is None:
            QTimer.singleShot(round(seconds * 1000), loop.quit)
        else:
            work(loop)
        loop.exec()
        for timer in timers:
            timer.stop()
        return list(appends), list(gaps[1:])

    idle_appends, idle_gaps = measure(args.idle_seconds)
    prepared = [run_steps(run) for run in range(args.runs)]
    writer_times: list[float] = []
    sizes: list[int] = []
    archive = StepArchive.beside(journal.path, cap_bytes=2**40)

    def archive_all(loop) -> None:
        written = {"count": 0}
        started = {"at": time.perf_counter(), "size": archive.size_bytes()}

        def done(_run_id: str) -> None:
            writer_times.append(time.perf_counter() - started["at"])
            size = archive.size_bytes()
            sizes.append(size - started["size"])
            started["at"], started["size"] = time.perf_counter(), size
            written["count"] += 1
            if written["count"] == args.runs:
                loop.quit()

        archive.archived.connect(done)
        for run, steps in enumerate(prepared):
            archive.put(f"run-{run}", steps)

    busy_appends, busy_gaps = measure(None, archive_all)
    archive.close(keep_pending=True)
    beside = (list(writer_times), list(sizes))
    writer_times.clear()
    sizes.clear()
    archive = StepArchive(journal.path, cap_bytes=2**40)  # the same tables inside the journal file
    inside_appends, inside_gaps = measure(None, archive_all)
    archive.close(keep_pending=True)
    journal.close()
    writer_times[:], sizes[:] = beside

    megabyte = 2**20
    print(f"run: {args.base_steps} base steps at 64 px + {args.upsample_steps} upsampler steps at 256 px, "
          f"{rows} candidates, DPM-Solver++(2M) states; {args.runs} runs written")
    print(f"on disk per run          {statistics.median(sizes) / megabyte:.1f} MB")
    print(f"writer per run           {statistics.median(writer_times) * 1000:.0f} ms median (writer thread)")
    print(f"stroke transaction       idle {median_p99_max(idle_appends)}   "
          f"steps beside the journal {median_p99_max(busy_appends)}   "
          f"steps inside the journal {median_p99_max(inside_appends)}   (median / p99 / max)")
    print(f"worst GUI stall          idle {max(idle_gaps):.1f} ms   beside {max(busy_gaps):.1f} ms   "
          f"inside {max(inside_gaps):.1f} ms (heartbeat every {args.interval:g} ms)")
    del app


if __name__ == "__main__":
    main()
