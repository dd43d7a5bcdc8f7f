"""The main window: tools left, canvas centre, controls and history right, candidates below."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from PySide6.QtCore import QEvent, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDockWidget,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from glide_studio import imageio
from glide_studio.app.controller import StudioController
from glide_studio.app.downloads import ModelDownloader
from glide_studio.app.engine import Engine
from glide_studio.app.errors import StudioError
from glide_studio.app.images import difference_heatmap
from glide_studio.app.journal import JournalError
from glide_studio.app.live import LivePainter
from glide_studio.app.run_log import RunLog
from glide_studio.app.sessions import Session, abandoned_documents
from glide_studio.app.settings import Preferences, default_settings
from glide_studio.app.starter import STARTER_CAPTION, starter_scene
from glide_studio.app.step_archive import DEFAULT_CAP_MB
from glide_studio.app.worker import Progress
from glide_studio.pipelines.request import Mode
from glide_studio.ui import dialogs, icons
from glide_studio.ui.candidates import CandidatesStrip
from glide_studio.ui.canvas import Canvas
from glide_studio.ui.controls import ControlsPanel
from glide_studio.ui.file_actions import FileActions
from glide_studio.ui.gallery_panel import GalleryPanel
from glide_studio.ui.help_menu import build_help_menu
from glide_studio.ui.history_panel import HistoryPanel
from glide_studio.ui.image_prompts import ImagePromptActions
from glide_studio.ui.new_canvas import new_canvas
from glide_studio.ui.outpaint_dialog import OutpaintLauncher
from glide_studio.ui.recent_menu import RecentMenu
from glide_studio.ui.regions import RegionsEditor, RegionsTool
from glide_studio.ui.regions_panel import RegionsPanel
from glide_studio.ui.status_widgets import RunProgress, StatusBar
from glide_studio.ui.timeline import TimelineBar
from glide_studio.ui.tools_panel import ToolsPanel
from glide_studio.ui.window_state import restore_window_state, save_window_state

Keys = QKeySequence.StandardKey

STEPS_CAP_KEY = "journal/keep_steps_mb"
MAX_MEGAPIXELS_KEY = "images/max_megapixels"


def _with(keys: list[QKeySequence], *more: str) -> list[QKeySequence]:
    """The platform's standard keys, then the given ones it lacks."""
    return keys + [QKeySequence(key) for key in more if QKeySequence(key) not in keys]


def _format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class MainWindow(QMainWindow):
    def __init__(
        self, engine: Engine, settings: QSettings | None = None, picture=None, min_interval: float = 1 / 20
    ) -> None:
        super().__init__()
        self.setWindowTitle("GLIDE Studio")
        self.setWindowIcon(icons.app_icon())
        self.preferences = Preferences(settings if settings is not None else default_settings())
        self._apply_max_megapixels()
        first_picture = starter_scene() if picture is None else picture
        caption = "Starter scene" if picture is None else "Picture"
        self.controller = StudioController(engine, first_picture, caption, min_interval, self)
        self.controller.set_steps_cap(self._steps_cap_mb())
        engine.set_compile(self.preferences.compile_networks())
        run_settings = self.preferences.run_settings()
        if picture is None and not run_settings.request.prompt:
            run_settings = run_settings.with_request(prompt=STARTER_CAPTION)
        devices = engine.devices()
        if run_settings.device not in devices:
            run_settings = replace(run_settings, device=devices[0])
        self.controller.set_run_settings(run_settings)
        self._run_start = 0.0
        self._stage_cost: dict[str, float] = {}
        """Seconds per step of each stage, as last measured: what the time left is estimated from."""
        self._stage_began = self._last_elapsed = 0.0
        self._closing = False

        self.canvas = Canvas(self.controller.document)
        self.setCentralWidget(self.canvas)
        self.controls = ControlsPanel(run_settings, engine.model_choices(), devices)
        self.tools = ToolsPanel(self.canvas)
        self.regions = RegionsEditor(self.controller, self.canvas.undo_stack, self)
        self.regions_tool = RegionsTool(self.canvas, self.regions)
        self.regions_panel = RegionsPanel(self.regions)
        self.candidates = CandidatesStrip()
        self.history_panel = HistoryPanel(self.controller.history)
        self.gallery = GalleryPanel(self.controller)
        self.timeline = TimelineBar(self.controller)
        self.live = LivePainter(self.controller, parent=self)
        self.outpaint = OutpaintLauncher(self)
        tools_dock = self._dock("Tools", self.tools, Qt.DockWidgetArea.LeftDockWidgetArea)
        tools_dock.setTitleBarWidget(QWidget())
        controls_scroll = QScrollArea()  # every run setting has a control: on a small screen they scroll
        controls_scroll.setWidget(self.controls)
        controls_scroll.setWidgetResizable(True)
        controls_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls_scroll.setMinimumWidth(self.controls.sizeHint().width()
                                        + controls_scroll.verticalScrollBar().sizeHint().width())
        generate = QWidget()
        generate_layout = QVBoxLayout(generate)
        generate_layout.setContentsMargins(0, 0, 0, 0)
        generate_layout.setSpacing(0)
        generate_layout.addWidget(controls_scroll, 1)
        generate_layout.addWidget(self.controls.run_bar)
        self._dock("Generate", generate, Qt.DockWidgetArea.RightDockWidgetArea)
        history_dock = self._dock("History", self.history_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(history_dock, self._dock("Gallery", self.gallery, Qt.DockWidgetArea.RightDockWidgetArea))
        self.tabifyDockWidget(history_dock, self._dock("Regions", self.regions_panel,
                                                       Qt.DockWidgetArea.RightDockWidgetArea))
        history_dock.raise_()
        timeline_dock = self._dock("Timeline", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea)
        candidates_dock = self._dock("Candidates", self.candidates, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(timeline_dock, candidates_dock, Qt.Orientation.Vertical)
        self.resizeDocks([candidates_dock], [self.candidates.sizeHint().height()], Qt.Orientation.Vertical)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.setStatusBar(StatusBar())
        self.progress = RunProgress()
        self.progress.setFixedWidth(260)
        self.progress.setFormat("Idle")
        self.progress.setValue(0)
        self.zoom_label = QLabel()
        self.statusBar().addPermanentWidget(self.zoom_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.files = FileActions(self)
        self.downloader = ModelDownloader(parent=self)
        self.downloader.progress.connect(self._on_download_progress)
        self.downloader.finished.connect(self._on_download_finished)
        self._build_actions()
        self._connect()
        self.run_log = RunLog(self.controller, self)

        self.session = Session.create()
        self.controller.attach_journal(self.session.journal)
        self.session.mark_baseline()
        self.pending_recovery = next(iter(abandoned_documents()), None)
        for signal in (self.controller.history.node_added, self.controller.history.reset):
            signal.connect(self.update_title)
        self.update_title()
        self.resize(1400, 900)
        restore_window_state(self)
        self.statusBar().showMessage("Paint a mask over what should change, type a caption, press Ctrl+Enter.")

    def update_title(self, *_args) -> None:
        name = self.files.project_path.name if self.files.project_path else "untitled"
        marker = " •" if self.files.has_unsaved_edits else ""
        self.setWindowTitle(f"{name}{marker} — GLIDE Studio")

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcuts=(), menu=None) -> QAction:
        """``shortcuts``: key strings, or QKeySequence.StandardKey for standard actions (the platform's keys)."""
        action = QAction(text, self)
        keys = []
        for key in shortcuts:
            keys += QKeySequence.keyBindings(key) if isinstance(key, Keys) else [QKeySequence(key)]
        action.setShortcuts(keys)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        files, canvas = self.files, self.canvas
        file_menu = self.menuBar().addMenu("&File")
        self._action("&New…", lambda: new_canvas(self), [Keys.New], file_menu)
        self._action("&Open…", files.open_dialog, [Keys.Open], file_menu)
        self.recent_menu = RecentMenu(self, file_menu)
        file_menu.addMenu(self.recent_menu)
        self._action("&Paste picture", files.paste, [Keys.Paste], file_menu)
        file_menu.addSeparator()
        self._action("&Save project", files.save_project, [Keys.Save], file_menu)
        self._action("Save project &as…", files.save_project_as, [Keys.SaveAs], file_menu)
        self._action("&Export PNG…", files.export_dialog, ["Ctrl+E"], file_menu)
        file_menu.addSeparator()
        self._action("&Quit", self.close, [Keys.Quit], file_menu).setMenuRole(QAction.MenuRole.QuitRole)

        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = canvas.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts(Keys.Undo)
        self.redo_action = canvas.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts(_with(QKeySequence.keyBindings(Keys.Redo), "Ctrl+Shift+Z", "Ctrl+Y"))
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)
            edit_menu.addAction(action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.tools.clear_action)
        edit_menu.addAction(self.tools.invert_action)
        self._action("Clear sketch", canvas.clear_sketch, [], edit_menu)
        self._action("Clear lock", self.controller.document.clear_lock, [], edit_menu)
        edit_menu.addSeparator()
        self._action("Automatic edit box", lambda: self.controller.document.set_edit_box(None), [], edit_menu)
        self._action("Smaller brush", canvas.smaller_brush, ["["], edit_menu)  # whatever has the focus
        self._action("Larger brush", canvas.larger_brush, ["]"], edit_menu)
        self.clear_on_accept_action = self._action("Clear mask and sketch after accepting",
                                                   self._toggle_clear_on_accept, [], edit_menu)
        self.clear_on_accept_action.setCheckable(True)
        self._action("Keep steps of past runs…", self.ask_steps_cap, [], edit_menu)
        self._action("Largest picture to open…", self.ask_max_megapixels, [], edit_menu)
        self.compile_action = self._action("Compile the demo model in the background", self._toggle_compile, [],
                                           edit_menu)
        self.compile_action.setCheckable(True)
        self.compile_action.setChecked(self.preferences.compile_networks())
        self.compile_action.setToolTip("Compiles the demo networks (torch.compile) while you work and runs them "
                                       "compiled once ready; runs never wait for it")
        self.clear_on_accept_action.setChecked(self.controller.run_settings.clear_layers_on_accept)

        view_menu = self.menuBar().addMenu("&View")
        self._action("&Fit picture", canvas.fit, ["Ctrl+0"], view_menu)
        self._action("Zoom &in", lambda: canvas.zoom_by(1.25), [Keys.ZoomIn, "Ctrl+="], view_menu)
        self._action("Zoom &out", lambda: canvas.zoom_by(0.8), [Keys.ZoomOut], view_menu)
        self.heatmap_action = self._action("&Difference heatmap", self._show_candidate_or_heatmap, ["H"], view_menu)
        self.heatmap_action.setCheckable(True)
        self.heatmap_action.setToolTip("Show where the candidate differs from the picture (black: unchanged)")
        view_menu.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())

        model_menu = self.menuBar().addMenu("&Model")
        self.download_action = self._action("&Download GLIDE weights…", self.download_glide, [], model_menu)
        self.download_sd_action = self._action("Download a &Stable Diffusion model…", self.download_sd, [],
                                               model_menu)

        run_menu = self.menuBar().addMenu("&Run")
        self.run_action = self._action("&Run", self.run, ["Ctrl+Return", "Ctrl+Enter"], run_menu)
        self.cancel_action = self._action("&Cancel", self.cancel, ["Escape"], run_menu)
        self.pause_action = self._action("&Pause / resume", self.pause_or_resume, ["F8", "Pause"], run_menu)
        run_menu.addSeparator()
        self.live_action = self._action("&Live painting", self.live.set_enabled, ["Ctrl+L"], run_menu)
        self.live_action.setCheckable(True)
        self.live_action.setToolTip("Every finished stroke starts a quick run of the edit box; the newest is shown")
        self.apply_live_action = self._action("A&pply live picture", self.apply_live, ["Ctrl+Shift+L"], run_menu)
        run_menu.addSeparator()
        self.outpaint_action = self._action("E&xtend canvas and fill…", self.outpaint.ask, [], run_menu)
        self.accept_action = self._action("&Accept candidate", self.accept, ["Return", "Enter"], run_menu)
        self.discard_action = self._action("&Discard candidates", self.controller.discard_candidates, [], run_menu)
        self.accept_action.setEnabled(False)
        self.discard_action.setEnabled(False)
        self.image_prompts = ImagePromptActions(self, run_menu)
        build_help_menu(self)

    def _connect(self) -> None:
        controller, controls = self.controller, self.controls
        controls.run_settings_edited.connect(controller.set_run_settings)
        controller.run_settings_changed.connect(controls.set_run_settings)
        controls.run_requested.connect(self.run)
        controls.cancel_requested.connect(self.cancel)
        controls.pause_requested.connect(self.pause_or_resume)
        controls.preview_source_changed.connect(lambda source: setattr(controller, "preview_source", source))
        controller.run_started.connect(self._on_run_started)
        controller.run_step.connect(self._on_step)
        controller.run_finished.connect(self._on_finished)
        controller.run_failed.connect(self._on_failed)
        controller.run_cancelled.connect(self._on_cancelled)
        controller.busy_changed.connect(lambda busy: controls.set_running(busy, controller.paused is not None))
        controller.run_paused.connect(self._on_paused)
        controller.status.connect(lambda text: self.statusBar().showMessage(text))
        controller.candidates_changed.connect(self._on_candidates_changed)
        controller.candidate_viewed.connect(self._on_candidate_viewed)
        self.candidates.candidate_clicked.connect(controller.view_candidate)
        self.candidates.accept_requested.connect(self.accept)
        self.candidates.discard_requested.connect(controller.discard_candidates)
        self.candidates.retry_requested.connect(self.retry_area)
        self.history_panel.node_clicked.connect(self.go_to_node)
        self.gallery.accept_requested.connect(self.accept_from_gallery)
        self.gallery.delete_requested.connect(self.delete_from_gallery)
        self.canvas.compare_held.connect(self._show_before)
        self.regions.changed.connect(lambda: self.tools.set_regions_enabled(self.regions.active))
        self.tools.set_regions_enabled(self.regions.active)
        self.timeline.scrubbed.connect(self._show_step)
        self.timeline.fork_requested.connect(self.fork_from)
        self.timeline.strength_requested.connect(self.rerun_at_strength)
        self.live.shown.connect(self._show_live)
        self.live.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.live_action.toggled.connect(lambda on: None if on else self.canvas.set_preview(None))
        self.controls.caption.installEventFilter(self)
        self.canvas.files_dropped.connect(lambda paths: self.files.open_path(paths[0]))
        self.canvas.image_dropped.connect(lambda image: self.files.open_qimage(image, "Dropped picture"))
        self.canvas.zoom_changed.connect(lambda zoom: self.zoom_label.setText(f"{zoom * 100:.0f}%"))

    # --- running ----------------------------------------------------------------------------------
    def run(self) -> None:
        if self.controller.busy:
            return
        self.controller.set_run_settings(self.controls.run_settings())
        try:
            self.controller.generate()
        except StudioError as error:
            self.statusBar().showMessage(str(error), 8000)

    def retry_area(self) -> None:
        """Retry this area: the shown run's region drawn again with new seeds."""
        if self.controller.busy or self.controller.shown_run is None:
            return
        try:
            self.controller.retry_area(self.controller.shown_run)
        except StudioError as error:
            self.statusBar().showMessage(str(error), 8000)

    def cancel(self) -> None:
        if self.controller.busy:
            self.controller.cancel()
            self.statusBar().showMessage("Cancelling after this step…")
        elif self.controller.paused is not None:
            self.controller.cancel()
            self.controls.set_running(False)
            self.canvas.set_preview(None)
            self.progress.setFormat("Idle")
            self.statusBar().showMessage("The paused run was let go.", 5000)

    def pause_or_resume(self) -> None:
        if self.outpaint.outpainter.running:
            return  # an outpaint's boxes are not paused one by one
        if self.controller.busy:
            self.controller.pause()
            self.statusBar().showMessage("Pausing after this step…")
        elif self.controller.paused is not None:
            self.controller.set_run_settings(self.controls.run_settings())
            try:
                self.controller.resume()
            except StudioError as error:
                self.statusBar().showMessage(str(error), 8000)

    def _show_live(self, picture) -> None:
        """Over the edit box, so the user keeps painting on the canvas beneath it."""
        if self.live.enabled and picture.shape == self.controller.document.picture.shape:
            box = self.controller.document.edit_box
            self.canvas.set_preview(picture[box.y: box.y + box.height, box.x: box.x + box.width])
            self.statusBar().showMessage("Live: Ctrl+Shift+L makes this picture a candidate.", 4000)

    def apply_live(self) -> None:
        run = self.live.apply()
        if run is not None:
            self.statusBar().showMessage("The live picture is a candidate now: Enter accepts it.", 5000)

    def _show_step(self, preview) -> None:
        """A scrubbed step's preview over the box (None: back to what the canvas showed)."""
        request = self.controller.timeline_request
        self.canvas.set_preview(preview, only_in_mask=preview is not None and self._through_mask(request))

    def fork_from(self, index: int) -> None:
        if self.controller.busy:
            return
        self.controller.set_run_settings(self.controls.run_settings())
        try:
            self.controller.fork_from(index)
        except StudioError as error:
            self.statusBar().showMessage(str(error), 8000)

    def rerun_at_strength(self, strength: float) -> None:
        """The timeline's strength scrubber let go at `strength`."""
        if self.controller.busy:
            self.statusBar().showMessage("A run is going: the strength scrubber waits until it is over.", 5000)
            return
        self.controller.set_run_settings(self.controls.run_settings())
        try:
            self.controller.rerun_at_strength(strength)
        except StudioError as error:
            self.statusBar().showMessage(str(error), 8000)

    def _steps_cap_mb(self) -> int:
        try:
            return max(0, int(self.preferences.value(STEPS_CAP_KEY, DEFAULT_CAP_MB)))
        except (TypeError, ValueError):
            return DEFAULT_CAP_MB

    def ask_steps_cap(self) -> None:
        """Edit ▸ Keep steps of past runs…: how much disk the steps of older runs may take in the journal."""
        megabytes, chosen = QInputDialog.getInt(
            self, "Keep steps of past runs", "Keep steps of past runs (MB on disk; 0 keeps none):",
            self._steps_cap_mb(), 0, 1_000_000, 64)
        if chosen:
            self.preferences.set_value(STEPS_CAP_KEY, int(megabytes))
            self.controller.set_steps_cap(megabytes)

    def ask_max_megapixels(self) -> None:
        """Edit ▸ Largest picture to open…: the decompression-bomb guard's limit, kept as a preference."""
        current = imageio.max_pixels() / 1e6
        megapixels, chosen = QInputDialog.getDouble(
            self, "Largest picture to open", "Refuse pictures larger than (megapixels):", current, 1.0, 10_000.0, 1)
        if chosen:
            self.preferences.set_value(MAX_MEGAPIXELS_KEY, float(megapixels))
            imageio.set_max_megapixels(megapixels)
            self.statusBar().showMessage(f"Pictures up to {megapixels:g} megapixels open now.", 5000)

    def _apply_max_megapixels(self) -> None:
        try:
            chosen = self.preferences.value(MAX_MEGAPIXELS_KEY, None)
            if chosen is not None and not os.environ.get(imageio.MAX_PIXELS_ENV):  # the environment wins
                imageio.set_max_megapixels(float(chosen))
        except (TypeError, ValueError, imageio.ImageLoadError):
            pass  # a damaged preference: Pillow's own limit stays

    def _on_paused(self, paused) -> None:
        self.controls.set_running(False, paused=True)
        self.progress.setFormat(f"Paused {paused.index + 1}/{paused.total}")
        self.statusBar().showMessage(f"Paused after step {paused.index + 1} of {paused.total}: change the mask, "
                                     "sketch or caption if you like, then Resume (F8).")

    def accept(self) -> None:
        if isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox)):
            return  # Enter in the caption or a number field finishes typing; it accepts nothing
        if self.controller.candidates is not None:
            self.controller.accept_candidate()
            self.statusBar().showMessage("Accepted: added to the history (Ctrl+Z takes it back).", 5000)

    def accept_from_gallery(self, run: int, candidate: int) -> None:
        self.controller.accept_candidate(candidate, run)
        self.statusBar().showMessage("Accepted from the gallery (Ctrl+Z takes it back).", 5000)

    def delete_from_gallery(self, run: int, candidate: int) -> None:
        if dialogs.ask_yes_no(self, "Delete from the gallery?",
                              f"Delete candidate {candidate + 1} of run {run + 1} from the gallery?"):
            self.controller.delete_candidate(run, candidate)

    def _toggle_compile(self, on: bool) -> None:
        """Edit ▸ Compile the demo model: applies from the next run; turned on, compiling starts now."""
        self.preferences.set_compile_networks(on)
        self.controller.engine.set_compile(on)
        if on and not self.controller.busy:
            self.controller.prepare()
        self.statusBar().showMessage("The demo model is compiled in the background; runs use it once ready." if on
                                     else "Runs use the model uncompiled from the next run on.", 5000)

    def _toggle_clear_on_accept(self, on: bool) -> None:
        self.controller.set_run_settings(replace(self.controller.run_settings, clear_layers_on_accept=bool(on)))

    def _show_candidate_or_heatmap(self, *_args) -> None:
        """The viewed candidate, or (View ▸ Difference heatmap, H) where it differs from the picture."""
        viewed, images = self.controller.viewed_candidate, self.controller.candidates
        if viewed is None or images is None:
            self.canvas.show_image(None)
            return
        picture = self.controller.document.picture
        heat = self.heatmap_action.isChecked() and images[viewed].shape == picture.shape
        self.canvas.show_image(difference_heatmap(picture, images[viewed]) if heat else images[viewed])

    def _show_before(self, held: bool) -> None:
        """While the compare key is held, the picture without the candidate on screen."""
        if held:
            self.canvas.show_image(None)
        else:
            self._show_candidate_or_heatmap()

    # Ctrl shortcuts that a text field would otherwise keep for itself (Ctrl+E is "end of line" there).
    _TEXT_KEYS = {Qt.Key.Key_A, Qt.Key.Key_C, Qt.Key.Key_V, Qt.Key.Key_X, Qt.Key.Key_Z, Qt.Key.Key_Y,
                  Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Backspace, Qt.Key.Key_Delete, Qt.Key.Key_Home,
                  Qt.Key.Key_End}

    def eventFilter(self, watched, event) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier and event.key() not in self._TEXT_KEYS):
            event.ignore()  # not the caption's: the window's shortcut takes it
            return True
        return super().eventFilter(watched, event)

    def go_to_node(self, node_id: int) -> None:
        self.controller.discard_candidates()
        self.controller.go_to_node(node_id)
        self.canvas.undo_stack.clear()

    def _on_run_started(self, job) -> None:
        self._run_start = time.monotonic()
        self._stage_began = self._last_elapsed = 0.0
        self.canvas.set_preview(None)
        self.controller.discard_candidates()
        self.progress.setRange(0, max(1, job.request.steps))
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")

    def _on_step(self, progress: Progress) -> None:
        done = progress.index + 1
        self.progress.setRange(0, max(1, progress.total))
        self.progress.setValue(done)
        left = self._time_left(progress)
        self.progress.setFormat(f"{progress.stage} {done}/{progress.total} · {_format_seconds(left)} left")
        if progress.preview is not None and len(progress.preview):
            job = self.controller.runner.current_job
            self.canvas.set_preview(progress.preview[0], only_in_mask=self._through_mask(job and job.request))

    def _through_mask(self, request) -> bool:
        """A preview shows through the mask the canvas has, so the kept pixels stay sharp around it; a sketch run
        without a mask changes only where its strokes are, and its prediction is the picture elsewhere."""
        return (request is not None and request.mode in (Mode.INPAINT, Mode.SDEDIT)
                and self.controller.document.has_mask())

    def _time_left(self, progress: Progress) -> float:
        """Each stage at its own cost per step: this stage's so far, later stages' from the last run that had
        them (an upsampler step costs many base steps), else this stage's."""
        now = progress.elapsed
        if progress.stage_index == 0:
            self._stage_began = self._last_elapsed  # this stage began when the last one's final step ended
        self._last_elapsed = now
        per_step = (now - self._stage_began) / (progress.stage_index + 1)
        self._stage_cost[progress.stage] = per_step
        this_stage_left = progress.stage_total - progress.stage_index - 1
        later = progress.total - progress.index - 1 - this_stage_left
        later_cost = next((cost for stage, cost in self._stage_cost.items() if stage != progress.stage), per_step)
        return this_stage_left * per_step + later * later_cost

    def _on_finished(self, result) -> None:
        self.canvas.set_preview(None)
        self.progress.setFormat("Done")
        seconds = time.monotonic() - self._run_start
        self.statusBar().showMessage(
            f"{len(result.images)} candidate(s) in {seconds:.1f} s. Click to compare, Enter to accept.", 8000
        )

    def _on_failed(self, message: str) -> None:
        self.canvas.set_preview(None)
        self.progress.setFormat("Failed")
        self.statusBar().showMessage(message, 10000)
        if not self._closing:
            dialogs.show_error(self, "Generation failed", message)

    def _on_cancelled(self) -> None:
        self.canvas.set_preview(None)
        self.progress.setValue(0)
        self.progress.setFormat("Cancelled")
        self.statusBar().showMessage("Cancelled; nothing changed.", 5000)

    def _on_candidates_changed(self) -> None:
        images, run = self.controller.candidates, self.controller.shown_run
        shown = None if run is None else self.controller.runs[run]
        self.candidates.set_candidates(images, None if shown is None else shown.kept(),
                                       () if shown is None else shown.scores)
        has_any = images is not None and len(images) > 0
        self.accept_action.setEnabled(has_any)
        self.discard_action.setEnabled(has_any)

    def _on_candidate_viewed(self, index: int) -> None:
        if index < 0 or self.controller.candidates is None:
            self.canvas.show_image(None)
            return
        self._show_candidate_or_heatmap()
        self.candidates.select(index)
        self.gallery.select(self.controller.shown_run, index)

    # --- downloads --------------------------------------------------------------------------------
    def download_glide(self) -> bool:

        if self.downloader.running:
            return False
        if not dialogs.ask_yes_no(
            self,
            "Download GLIDE weights?",
            "Download OpenAI's GLIDE inpainting models (about 1.6 GB) into the "
            "per-user cache? Interrupted downloads resume next time.",
        ):
            return False
        try:
            self.downloader.start()
        except RuntimeError:  # no asyncio loop: only run_app installs one
            dialogs.show_error(self, "Download unavailable", "Downloads need the app's event loop.")
            return False
        self.download_action.setEnabled(False)
        return True

    def download_sd(self, name: str | None = None) -> bool:
        """Fetch a known Stable Diffusion model from the Hub (asked which, and told its size and licence)."""
        from glide_studio.app.engine import sd_model_choices

        missing = [choice for choice in sd_model_choices() if not choice.available and choice.family != "sd"]
        if self.downloader.running:
            return False
        if not missing:
            unavailable = next((choice for choice in sd_model_choices() if choice.family == "sd"), None)
            dialogs.show_error(self, "Stable Diffusion", unavailable.detail if unavailable is not None
                               else "Every known Stable Diffusion model is downloaded already.")
            return False
        if name is None:
            labels = [f"{choice.label} — {choice.detail}" for choice in missing]
            picked, accepted = QInputDialog.getItem(self, "Download a Stable Diffusion model", "Model:", labels, 0,
                                                    False)
            if not accepted:
                return False
            name = missing[labels.index(picked)].family
        try:
            self.downloader.start((name,))
        except RuntimeError:  # no asyncio loop: only run_app installs one
            dialogs.show_error(self, "Download unavailable", "Downloads need the app's event loop.")
            return False
        self.download_sd_action.setEnabled(False)
        return True

    def _on_download_progress(self, name: str, done: int, total: int) -> None:
        megabytes = 1024 * 1024
        self.progress.setRange(0, max(1, total // megabytes))
        self.progress.setValue(done // megabytes)
        self.progress.setFormat(f"{name} {done // megabytes}/{total // megabytes or '?'} MB")

    def _on_download_finished(self, success: bool, message: str) -> None:
        self.download_action.setEnabled(True)
        self.download_sd_action.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if success else 0)
        self.progress.setFormat("Downloaded" if success else "Idle")
        self.statusBar().showMessage(message, 10000)
        self.controls.set_models(self.controller.engine.model_choices())
        self.controls.set_run_settings(self.controller.run_settings)
        if not success and not self._closing and "cancelled" not in message:
            dialogs.show_error(self, "Download failed", message)

    # --- closing ----------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self._closing:  # closed already (a second close, e.g. at exit)
            event.accept()
            return
        if self.files.has_unsaved_edits:
            choice = dialogs.ask_save_discard_cancel(
                self, "Unsaved edits", "Save the edits in a project before closing?"
            )
            if choice == "cancel" or (choice == "save" and not self.files.save_project()):
                event.ignore()
                return
        self._closing = True
        self.preferences.set_run_settings(self.controller.run_settings)
        save_window_state(self)
        self.preferences.sync()
        self.downloader.cancel()
        # The worker stops after its current step; on a slow device that step can take seconds, so the
        # window goes away first and the wait is generous (a QThread destroyed while running aborts).
        self.hide()
        if not self.controller.shutdown(60_000):
            self.statusBar().showMessage("The model did not stop in time.")
        self.controller.detach_journal()
        self.session.close()  # saved or discarded on purpose: nothing to recover
        event.accept()

    def adopt_session(self, folder) -> None:
        """Continue the abandoned document in `folder` (crash recovery) instead of this window's new one."""
        try:
            recovered = Session.claim(folder)
            self.controller.replay(recovered.journal)
        except JournalError as error:
            raise StudioError(str(error)) from error
        self.session.close()
        self.session = recovered


def editor_parser():
    """The editor's own arguments (``glide-studio [FILE] [--fake-engine]``); the rest are Qt's."""
    import argparse

    parser = argparse.ArgumentParser(prog="glide-studio", description="GLIDE Studio desktop app")
    parser.add_argument("file", nargs="?", help="a picture or project to open")
    parser.add_argument("--fake-engine", action="store_true", help="try the interface without any model")
    return parser


def run_app(argv: list[str] | None = None, *, settings: QSettings | None = None, engine: Engine | None = None) -> int:
    """Opens the main window (starter scene, demo model) and runs Qt's loop with asyncio inside it.

    argv holds the arguments after the program name; settings and engine are for embedding and tests.
    """
    import asyncio
    import logging
    import sys

    import qasync
    from PySide6.QtWidgets import QApplication

    from glide_studio import __version__
    from glide_studio.logs import setup_logging
    from glide_studio.ui.error_reporting import ErrorReporter
    from glide_studio.ui.theme import apply_dark_theme

    args, qt_args = editor_parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))

    setup_logging("editor", sys.argv[1:] if argv is None else list(argv))
    if QApplication.instance() is None:  # fractional scale factors as they are: icons are drawn at any size
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(["glide-studio", *qt_args])
    app.setApplicationName("GLIDE Studio")
    app.setOrganizationName("GlideStudio")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("glide-studio")  # matches packaging/glide-studio.desktop: the dock shows our icon
    apply_dark_theme(app)
    if engine is not None:
        pass
    elif args.fake_engine:
        from glide_studio.app.fake_engine import FakeEngine

        engine = FakeEngine(step_delay=0.05, preview_size=64)
    else:
        from glide_studio.app.engine import PipelineEngine

        engine = PipelineEngine()
    window = MainWindow(engine, settings)
    reporter = ErrorReporter(window).install()
    logging.getLogger("glide_studio").info("devices: %s; runs on %s", ", ".join(engine.devices()),
                                           window.controller.run_settings.device)
    window.show()
    window.canvas.fit()
    window.controller.prepare()  # loads and warms the model while the user looks and paints
    for start_step, wanted in ((window.files.offer_recovery, window.pending_recovery),
                               (window.files.open_path, args.file)):
        try:
            if wanted:
                start_step(wanted)
        except Exception as error:  # noqa: BLE001 - a file that fails in an unforeseen way must not stop the start
            reporter.excepthook(type(error), error, error.__traceback__)

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(reporter.asyncio_handler)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    try:
        with loop:
            loop.run_until_complete(closed.wait())
    finally:
        reporter.uninstall()
        logging.getLogger("glide_studio").info("the editor closed")
    return 0
