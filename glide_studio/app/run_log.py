"""Every run's settings and outcome, in the log file (see glide_studio/logs.py)."""

from __future__ import annotations

import json
import logging

from PySide6.QtCore import QObject

from glide_studio.runs.codec import encode

_log = logging.getLogger("glide_studio.runs")


class RunLog(QObject):
    """Listens to a StudioController: one line when a run starts (its settings, as the record's JSON, and its
    device), one when it ends (finished with its candidates, failed with the message, cancelled or paused)."""

    def __init__(self, controller, parent: QObject | None = None) -> None:
        super().__init__(parent)
        controller.run_started.connect(self._started)
        controller.run_finished.connect(self._finished)
        controller.run_failed.connect(lambda message: _log.warning("run failed: %s", message))
        controller.run_cancelled.connect(lambda: _log.info("run cancelled"))
        controller.run_paused.connect(lambda paused: _log.info("run paused after step %d of %d", paused.index + 1,
                                                               paused.total))
        controller.runner.job_prepared.connect(self._prepared)

    @staticmethod
    def _started(job) -> None:
        _log.info("run started on %s: %s", job.device, json.dumps(encode(job.request), sort_keys=True))

    @staticmethod
    def _finished(result) -> None:
        context = result.record.context
        _log.info("run finished: %d candidate(s) of %dx%d on %s (%s)", len(result.images), result.images.shape[2],
                  result.images.shape[1], getattr(context, "device", "?"), getattr(context, "precision", "?"))

    @staticmethod
    def _prepared(job_id: int, problem: str) -> None:
        if problem:
            _log.warning("the model could not be loaded: %s", problem)
        else:
            _log.info("model loaded and warmed up")
