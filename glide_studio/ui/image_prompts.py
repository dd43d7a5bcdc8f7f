"""Pictures as prompts, in the window: the reference picture of Stable Diffusion runs (IP-Adapter), picked from a
file or the edit box, and "Variations of this box" (an unCLIP model's variations of the box's region, as
candidates), in the Run menu and on the canvas's right-click menu over the box. Each is greyed out when the current
model cannot use it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from glide_studio.app.errors import StudioError

PICTURE_FILTER = "Pictures (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)"


class ImagePromptActions(QObject):
    def __init__(self, window, menu: QMenu) -> None:
        super().__init__(window)
        self.window = window
        controller, picker = window.controller, window.controls.reference
        menu.addSeparator()
        self.variations_action = self._action("&Variations of this box", self.vary_box, menu, "Ctrl+Shift+V",
                                              "New pictures of the edit box's region from its image embedding "
                                              "(an unCLIP model), one candidate per seed")
        self.reference_from_box_action = self._action("Use this box as the &reference", self.reference_from_box,
                                                      menu, tip="The edit box's region becomes the reference picture "
                                                      "Stable Diffusion runs follow (IP-Adapter)")
        self.choose_reference_action = self._action("Reference picture from a &file…", self.choose_reference, menu)
        self.clear_reference_action = self._action("Clear the reference picture", lambda: self._set(None), menu)
        picker.set_adapters(controller.ip_adapter_choices())
        picker.show_adapter(controller.run_settings.request.ip_adapter)
        picker.choose_requested.connect(self.choose_reference)
        picker.from_box_requested.connect(self.reference_from_box)
        picker.clear_requested.connect(lambda: self._set(None))
        canvas = window.canvas
        canvas.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        canvas.customContextMenuRequested.connect(self._canvas_menu)
        controller.run_settings_changed.connect(self.sync)
        controller.run_settings_edited.connect(self.sync)
        controller.busy_changed.connect(self.sync)
        self.sync()

    def _action(self, text: str, slot, menu: QMenu, shortcut: str = "", tip: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(shortcut)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        menu.addAction(action)
        return action

    def sync(self, *_args) -> None:
        controller = self.window.controller
        request = controller.run_settings.request
        sd = request.family.value == "sd"
        self.variations_action.setEnabled(controller.makes_variations() and not controller.busy)
        self.variations_action.setToolTip(self.variations_action.statusTip() if controller.makes_variations() else
                                          "Needs an unCLIP model (Stable unCLIP, e.g. sd21-unclip-small)")
        for action in (self.reference_from_box_action, self.choose_reference_action):
            action.setEnabled(sd)
        self.clear_reference_action.setEnabled(controller.reference is not None)

    def _canvas_menu(self, position) -> None:
        canvas = self.window.canvas
        point = canvas.mapToScene(position)
        box = self.window.controller.document.edit_box
        if not (box.x <= point.x() < box.x + box.width and box.y <= point.y() < box.y + box.height):
            return
        menu = QMenu(canvas)
        menu.addAction(self.variations_action)
        menu.addAction(self.reference_from_box_action)
        menu.exec(canvas.viewport().mapToGlobal(position))

    def vary_box(self) -> None:
        window = self.window
        if window.controller.busy:
            return
        window.controller.set_run_settings(window.controls.run_settings())
        try:
            window.controller.vary_box()
        except StudioError as error:
            window.statusBar().showMessage(str(error), 8000)

    def reference_from_box(self) -> None:
        self.window.controller.reference_from_box()
        self.window.statusBar().showMessage("The edit box's region is the reference picture now.", 5000)

    def choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Reference picture", "", PICTURE_FILTER)
        if path:
            try:
                self.window.controller.set_reference_file(path)
            except StudioError as error:
                self.window.statusBar().showMessage(str(error), 8000)

    def _set(self, picture) -> None:
        self.window.controller.set_reference(picture)
