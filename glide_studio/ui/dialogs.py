"""Every blocking question and message the app asks goes through here, so tests can answer them."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def show_error(parent: QWidget | None, title: str, message: str) -> None:
    QMessageBox.warning(parent, title, message)


def ask_yes_no(parent: QWidget | None, title: str, question: str) -> bool:
    answer = QMessageBox.question(
        parent, title, question, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_save_discard_cancel(parent: QWidget | None, title: str, question: str) -> str:
    buttons = QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    answer = QMessageBox.question(parent, title, question, buttons)
    return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
        answer, "cancel"
    )


def open_file_name(parent: QWidget | None, title: str, directory: str, filters: str) -> str:
    path, _selected = QFileDialog.getOpenFileName(parent, title, directory, filters)
    return path


def save_file_name(parent: QWidget | None, title: str, directory: str, filters: str) -> str:
    path, _selected = QFileDialog.getSaveFileName(parent, title, directory, filters)
    return path
