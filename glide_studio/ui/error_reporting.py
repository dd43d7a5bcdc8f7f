"""The window never dies on an exception: every uncaught one (in a slot, a thread, an asyncio task) is logged
with its traceback and shown in a dialog, and the app goes on. Failures to load the model reach a dialog too."""

from __future__ import annotations

import logging
import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal

from glide_studio.logs import log_file
from glide_studio.ui import dialogs

_log = logging.getLogger("glide_studio.errors")


class ErrorReporter(QObject):
    """Installs the hooks for one window; ``report`` carries (title, text) to the GUI thread, where the dialog
    is shown later from the event loop, never inside the code that just failed."""

    report = Signal(str, str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.shown: list[tuple[str, str]] = []
        self._showing = False
        self._previous = (sys.excepthook, threading.excepthook)
        self.report.connect(self._show, Qt.ConnectionType.QueuedConnection)
        window.controller.runner.job_prepared.connect(self._prepared)

    def install(self) -> ErrorReporter:
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def excepthook(self, kind, error, trace) -> None:
        if issubclass(kind, KeyboardInterrupt):
            self._previous[0](kind, error, trace)
            return
        _log.error("uncaught exception", exc_info=(kind, error, trace))
        self.report.emit("Something went wrong", self._describe(error))

    def thread_excepthook(self, args) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        _log.error("uncaught exception in %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        self.report.emit("Something went wrong", self._describe(args.exc_value))

    def asyncio_handler(self, loop, context: dict) -> None:
        error = context.get("exception")
        message = context.get("message", "an asyncio task failed")
        if error is None:
            _log.error("asyncio: %s", message)
            return
        _log.error("asyncio: %s", message, exc_info=(type(error), error, error.__traceback__))
        self.report.emit("Something went wrong", self._describe(error))

    def _prepared(self, _job_id: int, problem: str) -> None:
        if problem:
            self.report.emit("The model could not be loaded", f"{problem}\n\nThe log has the details: {log_file()}")

    @staticmethod
    def _describe(error: BaseException | None) -> str:
        what = f"{type(error).__name__}: {error}" if error is not None else "an unknown error"
        return (f"{what}\n\nGLIDE Studio goes on; your document is safe in its journal. The whole error is in "
                f"the log: {log_file()}")

    def _show(self, title: str, text: str) -> None:
        self.shown.append((title, text))
        if self._showing or getattr(self.window, "_closing", False):
            return  # one dialog at a time: a burst of errors is in the log, not a pile of windows
        self._showing = True
        try:
            dialogs.show_error(self.window, title, text)
        finally:
            self._showing = False
