"""Live painting on the embedded demo model, in the app's own window (offscreen, real PipelineEngine):

    latency      from the end of a stroke (mouse-up) to the live picture for it on the canvas: --strokes
                 strokes, --gap s apart, p50 and p90 (target: p50 <= 0.5 s, p90 <= 1 s)
    stall        the GUI thread's worst stall while strokes come every --busy-gap s for --seconds s
                 (a QTimer heartbeat every 5 ms; target < 30 ms)
    kept steps   memory the timeline holds for one full-settings run (every step's state, on the CPU)

The live settings are printed. Run from the repository root:
    PYTHONPATH=. python benchmarks/bench_live.py [--strokes 12] [--gap 1.5] [--seconds 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=12)
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between strokes for the latency")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the stall phase paints")
    parser.add_argument("--busy-gap", type=float, default=0.25, help="seconds between strokes in the stall phase")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["GLIDE_STUDIO_DATA"] = tempfile.mkdtemp(prefix="bench-live-")
    import torch

    torch.set_num_threads(args.threads)
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QPointF, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from glide_studio.app import live as live_module
    from glide_studio.app.engine import PipelineEngine
    from glide_studio.app.starter import STARTER_CAPTION, starter_scene
    from glide_studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(os.path.join(os.environ["GLIDE_STUDIO_DATA"], "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(PipelineEngine(), settings, picture=starter_scene(256), min_interval=1 / 20)
    window.show()
    controller, live, canvas = window.controller, window.live, window.canvas
    controller.set_run_settings(controller.run_settings.with_request(prompt=STARTER_CAPTION, seed=1), announce=True)
    live._idle.setInterval(10**9)  # the full-quality redo is not part of the live latency
    canvas.set_brush_size(24)

    def wait(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def stroke(number: int) -> None:
        x = 40 + (number * 37) % 170
        canvas._begin_stroke(QPointF(x, 60))
        for y in (90, 120, 150):
            canvas._paint_segment(canvas._last_point, QPointF(x + 10, y))
            canvas._last_point = QPointF(x + 10, y)
        canvas._end_stroke()

    shown_at: list[float] = []
    live.shown.connect(lambda _picture: shown_at.append(time.perf_counter()))
    controller.prepare()
    wait(3.0)  # the window's warm-up, as when the app opens
    window.live_action.trigger()
    wait(2.0)

    # Qt's own event loop between strokes, as in the app: spinning processEvents from Python would hold the GIL
    # and starve the worker.
    latencies = []
    for number in range(args.strokes):
        before = len(shown_at)
        stroke(number)
        ended = time.perf_counter()
        wait(args.gap)
        latencies.append(shown_at[before] - ended if len(shown_at) > before else float("inf"))

    gaps: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: (gaps.append(clock.nsecsElapsed() / 1e6), clock.restart()))
    painter = QTimer()
    painter.setInterval(int(args.busy_gap * 1000))
    count = [0]
    painter.timeout.connect(lambda: (stroke(count[0]), count.__setitem__(0, count[0] + 1)))
    started_runs = live.runs_started
    clock.start()
    heartbeat.start()
    painter.start()
    wait(args.seconds)
    painter.stop()
    heartbeat.stop()
    live_runs = live.runs_started - started_runs
    window.live_action.trigger()
    wait(1.0)

    full = controller.run_settings
    finished = QEventLoop()
    controller.run_finished.connect(lambda _result: finished.quit())
    controller.generate()
    finished.exec()
    kept = sum(step.state.size_bytes for step in controller.timeline if step.state is not None)

    ordered = sorted(latencies)
    print(f"live settings: {live_module.LIVE_STEPS} steps of {live_module.LIVE_SAMPLER.value}, base stage only "
          f"(64 px), 1 candidate, edit box {controller.document.edit_box.width} px, {args.threads} torch threads")
    print(f"stroke end -> live picture: p50 {statistics.median(ordered):.2f} s, "
          f"p90 {ordered[max(0, round(0.9 * (len(ordered) - 1)))]:.2f} s over {len(ordered)} strokes")
    print(f"worst GUI stall over {args.seconds:g} s of painting (a stroke every {args.busy_gap:g} s, "
          f"{count[0]} strokes, {live_runs} live runs started): {max(gaps[1:]) - 5:.1f} ms")
    print(f"kept steps of one full run ({full.request.steps} + {full.request.upsample_steps} steps, "
          f"{full.request.batch} candidates): {kept / 2**20:.1f} MB for {len(controller.timeline)} steps")
    controller.mark_saved()
    window.close()
    app.processEvents()



if __name__ == "__main__":
    main()
