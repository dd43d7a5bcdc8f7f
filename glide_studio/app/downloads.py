"""Downloading the official GLIDE weights as an asyncio task (qasync runs it inside Qt's loop).

The blocking transfer runs in a worker thread via asyncio.to_thread; progress comes back as Qt signals,
so the window only ever sees numbers. Cancelling sets the event the checkpoints layer checks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

GLIDE_INPAINT_MODELS = ("base-inpaint", "upsample-inpaint")


def _ensure(name: str, progress: Callable, cancel: threading.Event) -> None:
    from glide_studio.checkpoints import DownloadProgress, ensure_checkpoint
    from glide_studio.pipelines.request import Family, family_of

    if family_of(name) is Family.SD:  # a Stable Diffusion model: the sd extra fetches it from the Hub
        from glide_studio.sd.hub import reporting_progress
        from glide_studio.sd.loading import folder_of, resolve

        def report(done: int, total: int) -> None:
            progress(DownloadProgress(done, total, 0.0))

        folder_of(resolve(name), progress_class=reporting_progress(report, cancel))
        return
    ensure_checkpoint(name, progress=progress, offline=False, cancel=cancel)


class ModelDownloader(QObject):
    progress = Signal(str, int, int)
    """name, bytes done, bytes total (0 when unknown)."""
    finished = Signal(bool, str)
    """success, message."""

    def __init__(
        self, fetch: Callable[[str, Callable, threading.Event], None] = _ensure, parent=None
    ) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self._cancel = threading.Event()
        self.task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, names: tuple[str, ...] = GLIDE_INPAINT_MODELS) -> asyncio.Task:
        """Needs a running asyncio loop in this thread (qasync's QEventLoop in the app)."""
        if self.running:
            return self.task
        import qasync

        loop = asyncio.get_event_loop()
        if not (loop.is_running() or isinstance(loop, qasync.QEventLoop)):
            raise RuntimeError("no asyncio loop runs inside Qt's loop here")
        self._cancel.clear()
        self.task = loop.create_task(self.download(names))
        return self.task

    def cancel(self) -> None:
        self._cancel.set()

    async def download(self, names: tuple[str, ...]) -> bool:
        try:
            for name in names:

                def report(record, name=name) -> None:
                    self.progress.emit(name, int(record.bytes_done), int(record.bytes_total or 0))

                await asyncio.to_thread(self._fetch, name, report, self._cancel)
        except Exception as error:  # noqa: BLE001 - the checkpoints layer's errors carry readable messages
            message = "Download cancelled." if self._cancel.is_set() else f"Download failed: {error}"
            self.finished.emit(False, message)
            return False
        from glide_studio.pipelines.request import Family, family_of

        sd_model = bool(names) and family_of(names[0]) is Family.SD
        self.finished.emit(True, "The Stable Diffusion model is ready." if sd_model else "GLIDE weights are ready.")
        return True
