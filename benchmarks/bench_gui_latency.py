"""GUI latency of the real app on the embedded demo model: Ctrl+Enter to the first preview on the canvas and
to the result shown, and the GUI thread's longest stall while a run goes on.

The window is the app's own MainWindow (starter scene 256 px, dark theme, a temporary QSettings) on the real
PipelineEngine; a mask is set over the red circle, and Ctrl+Enter goes to the caption field with QTest, as
a user would press it. A QTimer heartbeat (--interval ms, precise) ticks on the GUI thread from just before
the key press until --tail ms after the result; a stall is a gap between ticks minus the interval. For the
worst gap it prints what the GUI thread did meanwhile: its own CPU time (work an idle machine would see too),
its time waiting for a core (Linux schedstat: other processes), the rest (asleep on the GIL or a lock), the
worker thread's CPU and core waits (a worker on a core while the GUI sleeps means it held the GIL), and the CPU
of the process's other threads (the step archive's writer, torch's, Qt's), and where the worker's Python code was
at either end of it (the same place twice: one call that kept the GIL, or the cores, meanwhile).
It also times the GUI-thread slots that touch pictures (preview, candidates, result) in wall and CPU ms.
Cases:

    base     inpaint, base 64 px stage only ("Upsample to 256 px" unchecked)
    default  the app's default request: inpaint of the 256 px picture, base 64 px + upsample to 256 px,
             2 candidates, the default steps (per-phase figures: load, base, upsample, result)

The first repeat of each case loads networks (cold; the first of the process also imports torch's lazy
modules: run one case alone to see its own cold start) unless --prepare first warms them as the app does
when its window opens (that warm-up's own worst stall is printed); median and worst are over all repeats. The loop is a
plain QEventLoop, as run_app's qasync loop runs Qt's own exec. Run from the repository root:

    PYTHONPATH=. nice -n 19 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_gui_latency.py
        [--cases base,default] [--repeats 3] [--threads 1] [--interval 5] [--tail 150] [--prepare]
        [--compile off|during|ready] [--cache DIR] [--gallery N] [--picture PX]

--gallery N first fills the gallery with N runs (one real run, copied), as after a long session: what the window
does when a run ends must not grow with the runs before it.

--compile turns on Edit ▸ Compile the demo model (the engine compiles after --prepare, implied): "during" times
the runs while the background compile goes on (a first start, or with a warm --cache a later one), "ready" waits
for the compiled networks first, so the runs are compiled; each run says whether it ran compiled.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from glide_studio.app.engine import PipelineEngine  # noqa: E402
from glide_studio.app.settings import COMPILE_KEY  # noqa: E402
from glide_studio.app.starter import STARTER_CAPTION, starter_scene  # noqa: E402
from glide_studio.ui import dialogs  # noqa: E402
from glide_studio.ui.main_window import MainWindow  # noqa: E402
from glide_studio.ui.theme import apply_dark_theme  # noqa: E402


class TimedEngine(PipelineEngine):
    """The app's engine, noting when loading ends and how many torch threads its worker thread uses."""

    def load_models(self, request, device):
        super().load_models(request, device)
        self.loaded_at, self.worker_threads = time.perf_counter(), torch.get_num_threads()
        self.worker_ident = threading.get_ident()


class PaintWatcher(QObject):
    """Notes the time of every paint of the canvas's viewport (the moment a preview becomes visible)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.times.append(time.perf_counter())
        return False


def timed(record: dict, name: str, function):
    """Wraps a GUI-thread call so each call's wall and thread-CPU seconds land in record[name]."""

    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            record.setdefault(name, []).append((time.perf_counter() - wall, time.thread_time() - cpu))

    return wrapper


def schedstat(path: str = "/proc/thread-self/schedstat") -> tuple[float, float]:
    """(seconds on a core, seconds runnable but waiting for one) of a thread, from Linux schedstat."""
    try:
        on_core, waiting = Path(path).read_text().split()[:2]
        return int(on_core) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return math.nan, math.nan


def worker_schedstat_path() -> str:
    """The worker QThread's schedstat file: Qt names the OS thread after the QThread's objectName."""
    for task in Path("/proc/self/task").iterdir():
        if (task / "comm").read_text().startswith("glide-studio"):
            return str(task / "schedstat")
    return "(worker thread not found)"


def where(thread_ident: int | None, depth: int = 3) -> str:
    """The innermost Python frames of a thread now (file:line function), innermost first."""
    frame, found = sys._current_frames().get(thread_ident), []
    while frame is not None and len(found) < depth:
        found.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found) or "(no Python frame)"


class GcPauses:
    """Python's garbage collections (any thread) as (start, end): a collection holds the GIL throughout."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def __call__(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.spans.append((self._start, time.perf_counter()))


def cpu_busy_share(seconds: float = 1.0) -> float:
    """Share of all cores busy over `seconds`, from /proc/stat (what the other processes are using)."""

    def totals():
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(values), values[3] + values[4]

    total0, idle0 = totals()
    time.sleep(seconds)
    total1, idle1 = totals()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def run_once(window, engine, args) -> dict:
    """One Ctrl+Enter to result with the heartbeat on; returns this run's figures (seconds, ms)."""
    marks, slots, steps, errors, ticks = {}, {}, [], [], []
    worker = worker_schedstat_path()
    canvas, controller, candidates = window.canvas, window.controller, window.candidates
    preview, show = canvas.set_preview, canvas.show_image

    def set_preview(image, only_in_mask=False):
        preview(image, only_in_mask)
        if image is not None:
            marks.setdefault("first preview set", time.perf_counter())

    def show_image(image):
        show(image)
        if image is not None:
            marks.setdefault("result shown", time.perf_counter())

    # Instance attributes shadow the methods: the window looks them up at each call.
    canvas.set_preview = timed(slots, "canvas.set_preview", set_preview)
    canvas.show_image = timed(slots, "canvas.show_image", show_image)
    candidates.set_candidates = timed(slots, "candidates.set_candidates", candidates.set_candidates)
    controller.generate = timed(slots, "controller.generate", controller.generate)
    watcher, collections = PaintWatcher(), GcPauses()
    gc.callbacks.append(collections)
    canvas.viewport().installEventFilter(watcher)
    loop, heartbeat = QEventLoop(), QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(args.interval)
    worker_at = []
    heartbeat.timeout.connect(
        lambda: (ticks.append((time.perf_counter(), time.thread_time(), schedstat()[1], *schedstat(worker),
                               time.process_time())), worker_at.append(where(getattr(engine, "worker_ident", None))))
    )

    def on_end(*outcome):
        marks["finished"] = time.perf_counter()
        errors.extend(o for o in outcome if isinstance(o, str))
        QTimer.singleShot(args.tail, loop.quit)

    connections = [(controller.run_step, lambda progress: steps.append((time.perf_counter(), progress.stage))),
                   (controller.run_finished, on_end), (controller.run_failed, on_end)]
    for signal, slot in connections:
        signal.connect(slot)
    engine.loaded_at = None
    window.controls.caption.setFocus()
    heartbeat.start()
    QTest.qWait(50)  # the heartbeat settles before the key press
    cpu0, start = time.process_time(), time.perf_counter()
    QTest.keyClick(window.controls.caption, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    if not controller.busy:
        raise SystemExit(f"Ctrl+Enter did not start a run: {window.statusBar().currentMessage()}")
    QTimer.singleShot(args.timeout * 1000, loop.quit)
    loop.exec()
    heartbeat.stop()
    cpu = time.process_time() - cpu0
    for signal, slot in connections:
        signal.disconnect(slot)
    canvas.viewport().removeEventFilter(watcher)
    gc.callbacks.remove(collections)
    del canvas.set_preview, canvas.show_image, candidates.set_candidates, controller.generate
    if errors or "finished" not in marks:
        raise SystemExit(f"The run failed or timed out: {errors}")
    controller.discard_candidates()

    first_set = marks.get("first preview set", math.nan)
    painted = [t for t in watcher.times if t >= first_set]
    shown = marks.get("result shown", marks["finished"])
    figures = {"to first preview set": first_set - start, "to first preview painted": painted[0] - start
               if painted else math.nan, "to result shown": shown - start, "process CPU s": cpu}
    if engine.loaded_at is not None:
        figures["phase load"] = engine.loaded_at - start
    phases = [(-math.inf, "key press, run start and load (to the first step)")]
    for stage in dict.fromkeys(stage for _, stage in steps):
        times = [t for t, name in steps if name == stage]
        figures[f"phase {stage} first step"] = times[0] - start
        figures[f"phase {stage} s/step"] = (times[-1] - times[0]) / max(1, len(times) - 1)
        phases.append((times[0] - start, f"{stage} steps"))
    figures["phase finish (last step to result shown)"] = shown - steps[-1][0]
    phases.append((marks["finished"] - start, "result slots"))

    gaps, gui_cpu, gui_queue, worker_cpu, worker_queue, process_cpu = np.diff(np.array(ticks), axis=0).T * 1000
    worst = int(np.argmax(gaps))
    figures |= {
        "ticks": len(ticks),
        "worst stall ms": gaps[worst] - args.interval,
        "p99 stall ms": max(0.0, np.percentile(gaps, 99) - args.interval),
        "max GUI CPU in any gap ms": gui_cpu.max(),
        "worst gap: GUI CPU / waiting for a core ms": (gui_cpu[worst], gui_queue[worst]),
        "worst gap: GUI other waits (GIL, locks) ms": max(0.0, gaps[worst] - gui_cpu[worst] - gui_queue[worst]
                                                          - args.interval),
        "worst gap: worker CPU / waiting for a core ms": (worker_cpu[worst], worker_queue[worst]),
        "worst gap: other threads' CPU ms": max(0.0, process_cpu[worst] - gui_cpu[worst] - worker_cpu[worst]),
        "worst gap: Python GC inside it ms": sum(max(0.0, min(b, ticks[worst + 1][0]) - max(a, ticks[worst][0]))
                                                 for a, b in collections.spans) * 1000,
        "longest GC pause ms": max((b - a for a, b in collections.spans), default=0.0) * 1000,
        "worst stall starts at s": ticks[worst][0] - start,
        "worst gap: the worker's Python before it": worker_at[worst],
        "worst gap: the worker's Python after it": worker_at[worst + 1],
    }
    figures["worst stall during"] = max(p for p in phases if p[0] <= ticks[worst][0] - start)[1]
    figures["ran compiled"] = "yes" if engine.context().compiled else "no"
    for name, calls in slots.items():
        figures[f"slot {name}: max wall / CPU ms"] = tuple(max(call[i] for call in calls) * 1000 for i in (0, 1))
    return figures


def fill_gallery(window, engine, args) -> None:
    """One real run (not timed), then copies of it (pictures copied too) up to --gallery runs in the gallery."""
    run_once(window, engine, args)
    controller = window.controller
    first = controller.runs[-1]
    while len(controller.runs) < args.gallery:
        controller.add_run(first.record, first.images.copy(), first.scores, run_id=uuid.uuid4().hex)
    controller.discard_candidates()
    print(f"\ngallery: {len(controller.runs)} runs, {window.gallery.count()} candidates")


def prepare_once(window, args) -> dict:
    """The app's warm-up when its window opens (controller.prepare, on the worker): its duration and the GUI
    thread's worst stall meanwhile."""
    ticks, loop, heartbeat = [], QEventLoop(), QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(args.interval)
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    outcome = []
    runner = window.controller.runner

    def on_prepared(_job_id, problem):
        outcome.append((time.perf_counter(), problem))
        QTimer.singleShot(args.tail, loop.quit)

    runner.job_prepared.connect(on_prepared)
    heartbeat.start()
    QTest.qWait(50)
    start = time.perf_counter()
    window.controller.prepare()
    QTimer.singleShot(args.timeout * 1000, loop.quit)
    loop.exec()
    heartbeat.stop()
    runner.job_prepared.disconnect(on_prepared)
    if not outcome or outcome[0][1]:
        raise SystemExit(f"preparing failed or timed out: {outcome}")
    gaps = np.diff(np.array(ticks)) * 1000 - args.interval
    return {"prepare s": outcome[0][0] - start, "worst stall ms": float(gaps.max()),
            "p99 stall ms": max(0.0, float(np.percentile(gaps, 99)))}


def report(case: str, runs: list[dict]) -> None:
    print(f"\n== {case}: {len(runs)} run(s); median / worst (per run); repeat 1 is cold: it loads networks")
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        if isinstance(values[0], str):
            print(f"  {key:50s} {'; '.join(values)}")
        elif isinstance(values[0], tuple):
            print(f"  {key:50s} " + "   ".join(f"{a:.1f} / {b:.1f}" for a, b in values))
        else:
            per_run = "  ".join(f"{v:.3f}" for v in values)
            print(f"  {key:50s} {statistics.median(values):8.3f} / {max(values):8.3f}   ({per_run})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="base,default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app leaves torch's own)")
    parser.add_argument("--interval", type=int, default=5, help="heartbeat interval, ms")
    parser.add_argument("--tail", type=int, default=150, help="heartbeat kept on after the result, ms")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per run")
    parser.add_argument("--prepare", action="store_true",
                        help="warm up first, as the app does when its window opens; runs are then all warm")
    parser.add_argument("--compile", choices=("off", "during", "ready"), default="off")
    parser.add_argument("--cache", help="inductor's cache folder (default: the editor's own)")
    parser.add_argument("--picture", type=int, default=256,
                        help="the starter scene's size in pixels (the edit box follows the mask: the model's work is "
                             "the same, the picture's pixels to show, store and paste back grow)")
    parser.add_argument("--gallery", type=int, default=0,
                        help="runs in the gallery before the timed ones (one real run, copied): a long session")
    parser.add_argument("--in-process", action="store_true",
                        help="with --compile: build the compiled networks in this process from a warm --cache, "
                             "without the editor's child process (which a loaded machine starves at nice 19)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache
    args.prepare = args.prepare or args.compile != "off"

    load = Path("/proc/loadavg").read_text().split()[:3]
    busy = cpu_busy_share()
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(load)}, {busy:.0%} of all cores busy over 1 s "
          f"before start (other processes); nice {os.nice(0)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); QPA {os.environ['QT_QPA_PLATFORM']}")

    app = QApplication.instance() or QApplication(["glide-studio"])
    app.setApplicationName("GLIDE Studio")
    app.setOrganizationName("GlideStudio")
    apply_dark_theme(app)
    dialogs.show_error = lambda _parent, title, message: print(f"error dialog: {title}: {message}")
    dialogs.ask_save_discard_cancel = lambda *_args: "discard"
    engine = TimedEngine()
    if args.in_process and args.cache:
        from glide_studio.runs.compiling import CompiledModels

        engine._compiled = CompiledModels(cache_dir=Path(args.cache))
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GLIDE_STUDIO_DATA"] = str(Path(folder) / "data")  # the session's journal, not the user's
        settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue(COMPILE_KEY, args.compile != "off")
        window = MainWindow(engine, settings, picture=starter_scene(args.picture))
        window.controls.caption.setText(STARTER_CAPTION)  # as the app's first start has it
        window.show()
        window.canvas.fit()
        window.activateWindow()
        QTest.qWaitForWindowActive(window, 5000)  # window shortcuts fire in the active window only
        mask = np.zeros(window.controller.document.picture.shape[:2], np.uint8)
        scale = args.picture / 256
        mask[round(24 * scale):round(124 * scale), round(40 * scale):round(140 * scale)] = 255  # the red circle
        window.controller.document.set_mask_array(mask)
        controls = window.controls
        params = controls.run_settings().request
        print(f"request: {params.mode.value}, {params.batch} candidates, {params.steps} base steps, "
              f"{params.upsample_steps} upsample steps, sampler {params.sampler.value}, picture "
              f"{window.controller.document.width} px, preview throttle 1/20 s (the app's)")
        try:
            if args.prepare:
                controls.upsample.setChecked(True)
                report("prepare (the app warms the default models when its window opens)", [prepare_once(window, args)])
            if args.compile == "ready":
                began = time.perf_counter()
                build = engine._compiled.build if engine._compiled is not None else None
                ready = build is not None and build.wait(args.timeout * 10) and build.ready
                why = "" if ready else f" ({build.error if build else 'not started'})"
                print(f"\ncompiled networks {'ready' if ready else 'NOT ready'} after "
                      f"{time.perf_counter() - began:.0f} s more{why}")
            if args.gallery:
                fill_gallery(window, engine, args)
            for case in args.cases.split(","):
                controls.upsample.setChecked(case != "base")
                controls.random_seed.setChecked(False)
                runs = [run_once(window, engine, args) for _ in range(args.repeats)]
                report(case, runs)
            print(f"\nworker thread torch threads: {engine.worker_threads}")
        finally:
            window.close()
            window.controller.shutdown(60_000)


if __name__ == "__main__":
    main()
