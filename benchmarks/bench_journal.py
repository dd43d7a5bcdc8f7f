"""What the journal costs on the GUI thread: per stroke, per run, and the longest stall while strokes are drawn.

The app's own MainWindow (fake engine, offscreen, a temporary data folder) on a --side px picture. Strokes of 4
segments (each up to --reach px) are drawn through the canvas's own stroke methods, each mouse event in an
event-loop turn of its own, while a QTimer heartbeat ticks every
--interval ms on the GUI thread; a stall is a gap between ticks minus the interval. Figures:

    journal per stroke   the SQLite transaction of a finished stroke (its pixels, zlib'd) — wall ms, median/p99
    stroke at mouse-up   all the GUI thread does at mouse-up (undo command, pixels of the rect, the journal)
    journal per run      the transaction of a finished run (--candidates PNGs made on the worker thread)
    worst GUI stall      over all the strokes

Run from the repository root:  PYTHONPATH=. python benchmarks/bench_journal.py [--side 1024] [--strokes 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from bench_stats import percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=1024, help="picture side in pixels")
    parser.add_argument("--strokes", type=int, default=300)
    parser.add_argument("--brush", type=int, default=40, help="brush size in picture pixels")
    parser.add_argument("--reach", type=float, default=60.0, help="how far each of a stroke's 4 segments goes, px")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat period, ms")
    args = parser.parse_args()
    os.environ["GLIDE_STUDIO_DATA"] = tempfile.mkdtemp(prefix="bench-journal-")

    from PySide6.QtCore import QElapsedTimer, QEventLoop, QPointF, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from glide_studio.app import journaling
    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.app.images import png_bytes
    from glide_studio.runs.record import RunContext, RunRecord
    from glide_studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    picture = np.random.default_rng(0).integers(0, 256, (args.side, args.side, 3), dtype=np.uint8)
    settings = QSettings(os.path.join(os.environ["GLIDE_STUDIO_DATA"], "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(FakeEngine(), settings, picture=picture, min_interval=0.0)
    window.show()
    canvas, journal = window.canvas, window.controller.journal
    canvas.set_brush_size(args.brush)

    appended: list[float] = []
    original_append = journal.append

    def timed_append(*call, **kwargs):
        start = time.perf_counter()
        try:
            return original_append(*call, **kwargs)
        finally:
            appended.append((time.perf_counter() - start) * 1e3)

    journal.append = timed_append
    rng = np.random.default_rng(1)
    mouse_up: list[float] = []
    gaps: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(int(args.interval))

    def tick() -> None:
        gaps.append(clock.nsecsElapsed() / 1e6)
        clock.restart()

    heartbeat.timeout.connect(tick)
    loop = QEventLoop()
    remaining = [args.strokes]

    pending: list = []

    def one_event() -> None:
        """Each mouse event of a stroke in a turn of its own, as the window gets them."""
        if not pending:
            if remaining[0] == 0:
                loop.quit()
                return
            remaining[0] -= 1
            start = rng.uniform(0, args.side, 2)
            points = [start + rng.uniform(-args.reach, args.reach, 2) * k for k in range(5)]
            pending.append(("press", points[0]))
            pending.extend(("move", point) for point in points[1:])
            pending.append(("release", points[-1]))
        kind, point = pending.pop(0)
        point = QPointF(*np.clip(point, 0, args.side - 1))
        if kind == "press":
            canvas._begin_stroke(point)
        elif kind == "move":
            canvas._paint_segment(canvas._last_point, point)
            canvas._last_point = point
        else:
            began = time.perf_counter()
            canvas._end_stroke()
            mouse_up.append((time.perf_counter() - began) * 1e3)
        QTimer.singleShot(0, one_event)

    clock.start()
    heartbeat.start()
    QTimer.singleShot(0, one_event)
    loop.exec()
    heartbeat.stop()
    stroke_journal = appended[-args.strokes:]
    stalls = [max(0.0, gap - args.interval) for gap in gaps[1:]]

    run_costs = []
    images = rng.integers(0, 256, (args.candidates, args.side, args.side, 3), dtype=np.uint8)
    encode_start = time.perf_counter()
    encoded = [png_bytes(image) for image in images]
    encode_ms = (time.perf_counter() - encode_start) * 1e3
    record = RunRecord(window.controller.run_settings.request, RunContext("cpu", "fp32"))
    for _ in range(args.runs):
        started = time.perf_counter()
        journal.append(*journaling.run_event(record, images, encoded))
        run_costs.append((time.perf_counter() - started) * 1e3)

    print(f"picture {args.side} px, {args.strokes} strokes of a {args.brush} px brush, journal {journal.path}")
    print(f"journal per stroke:  median {statistics.median(stroke_journal):.2f} ms, "
          f"p99 {percentile(stroke_journal, 0.99):.2f} ms, max {max(stroke_journal):.2f} ms")
    print(f"stroke at mouse-up:  median {statistics.median(mouse_up):.2f} ms, p99 {percentile(mouse_up, 0.99):.2f} ms")
    print(f"journal per run ({args.candidates} candidates of {args.side} px, PNGs made on the worker in "
          f"{encode_ms:.0f} ms): median {statistics.median(run_costs):.1f} ms, max {max(run_costs):.1f} ms")
    print(f"worst GUI stall while strokes were journalled: {max(stalls):.1f} ms "
          f"(heartbeat {args.interval:g} ms, {len(stalls)} ticks)")
    window.controller.mark_saved()
    window.close()
    app.processEvents()


if __name__ == "__main__":
    main()
