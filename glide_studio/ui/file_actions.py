"""Opening, pasting, saving, exporting and crash recovery: everything that touches files for the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication

from glide_studio.app.errors import StudioError
from glide_studio.app.images import MAX_SIDE, OPEN_FILTER, qimage_to_array
from glide_studio.app.project import PROJECT_FILTER, PROJECT_SUFFIX
from glide_studio.app.sessions import discard_abandoned
from glide_studio.ui import dialogs


class FileActions:
    def __init__(self, window) -> None:
        self.window = window
        self.controller = window.controller
        self.project_path: Path | None = None

    @property
    def _directory(self) -> str:
        return str(self.window.preferences.value("files/last_dir", str(Path.home())))

    def _remember(self, path: str | Path) -> None:
        self.window.preferences.set_value("files/last_dir", str(Path(path).parent))
        self.window.preferences.add_recent_file(str(path))

    def _fail(self, title: str, error: Exception) -> None:
        self.window.statusBar().showMessage(str(error), 8000)
        dialogs.show_error(self.window, title, str(error))

    @property
    def has_unsaved_edits(self) -> bool:
        """Anything done since the last save or open, strokes and settings included (the journal says)."""
        return self.controller.has_unsaved_changes

    def may_replace_document(self, doing: str = "opening another picture") -> bool:
        """Save / Discard / Cancel before unsaved work would be replaced; True when it may go ahead."""
        if not self.has_unsaved_edits:
            return True
        choice = dialogs.ask_save_discard_cancel(
            self.window, "Unsaved edits", f"Save the edits in a project before {doing}?")
        return choice == "discard" or (choice == "save" and self.save_project())

    # --- opening ----------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        filters = f"Images and projects (*.png *.jpg *.jpeg *.webp *.bmp *.gif *.tif *.tiff *{PROJECT_SUFFIX});;"
        path = dialogs.open_file_name(self.window, "Open", self._directory, filters + OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        path = Path(path)
        if not self.may_replace_document():
            return False
        if path.suffix.lower() == PROJECT_SUFFIX:
            return self.open_project(path)
        try:
            record = self.controller.open_image(path)
        except StudioError as error:
            self._fail("Could not open the picture", error)
            return False
        self._remember(path)
        self.project_path = None
        self.controller.mark_saved()
        self.window.statusBar().showMessage(f"Opened {path.name}", 5000)
        self.window.update_title()
        if record is not None and dialogs.ask_yes_no(
            self.window,
            "Restore parameters?",
            "This picture carries the parameters that made it. Restore them in the controls?",
        ):
            kept = self.controller.restore_run(record.request)
            if kept:
                self.window.statusBar().showMessage("Restored the picture's parameters, except: " + "; ".join(kept)
                                                    + ".", 12000)
        return True

    def open_project(self, path: str | Path) -> bool:
        try:
            self.controller.load_project(path)
        except StudioError as error:
            self._fail("Could not open the project", error)
            return False
        self.project_path = Path(path)
        self._remember(path)
        self.window.statusBar().showMessage(f"Opened project {Path(path).name}", 5000)
        self.window.update_title()
        return True

    def paste(self) -> bool:
        image = QApplication.clipboard().image()
        if image.isNull():
            self.window.statusBar().showMessage("The clipboard holds no picture.", 5000)
            return False
        return self.open_qimage(image, "Pasted picture")

    def open_qimage(self, image, caption: str) -> bool:
        """Picture data without a file (pasted or dropped) as a new document."""
        doing = "pasting a new picture" if caption.startswith("Pasted") else "opening the dropped picture"
        if max(image.width(), image.height()) > MAX_SIDE:
            self._fail("Could not open the picture", StudioError(
                f"The picture is {image.width()}x{image.height()}; the largest side the editor takes is {MAX_SIDE} px: "
                "scale it down first."))
            return False
        if not self.may_replace_document(doing):
            return False
        self.controller.open_array(qimage_to_array(image, 3), caption)
        self.controller.mark_saved()
        self.project_path = None
        self.window.update_title()
        return True

    # --- saving -----------------------------------------------------------------------------------
    def save_project(self) -> bool:
        if self.project_path is None:
            return self.save_project_as()
        return self._write_project(self.project_path)

    def save_project_as(self) -> bool:
        path = dialogs.save_file_name(self.window, "Save project", self._directory, PROJECT_FILTER)
        if not path:
            return False
        if not path.lower().endswith(PROJECT_SUFFIX):
            path += PROJECT_SUFFIX
        return self._write_project(Path(path))

    def _write_project(self, path: Path) -> bool:
        try:
            self.controller.save_project(path)
        except StudioError as error:
            self._fail("Could not save the project", error)
            return False
        self.project_path = path
        self._remember(path)
        self.window.statusBar().showMessage(f"Saved {path.name}", 5000)
        self.window.update_title()
        return True

    def export_dialog(self) -> bool:
        path = dialogs.save_file_name(self.window, "Export PNG", self._directory, "PNG image (*.png)")
        if not path:
            return False
        if not path.lower().endswith(".png"):
            path += ".png"
        return self.export_png(path)

    def export_png(self, path: str | Path) -> bool:
        try:
            self.controller.export_png(path)
        except StudioError as error:
            self._fail("Could not export", error)
            return False
        self._remember(path)
        self.window.statusBar().showMessage(f"Exported {Path(path).name} with its parameters", 5000)
        return True

    # --- recovery ---------------------------------------------------------------------------------
    def offer_recovery(self, folder: Path | None) -> bool:
        """A document whose window died with it (its journal, up to the last finished action): restore or
        discard it."""
        if folder is None:
            return False
        if not dialogs.ask_yes_no(
            self.window,
            "Restore unsaved work?",
            "GLIDE Studio did not close cleanly last time. Restore the document as it was at the last brush "
            "stroke? (No discards it.)",
        ):
            discard_abandoned(folder)
            return False
        try:
            self.window.adopt_session(folder)
        except StudioError as error:
            self._fail("Could not restore the document", error)
            return False
        self.project_path = None  # the recovered document is not in a file yet; Save asks where
        self.window.statusBar().showMessage("Restored the unsaved document.", 8000)
        self.window.update_title()
        return True
