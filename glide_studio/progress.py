"""The command-line progress bar shared by every long job (downloads, sampling, training)."""

from __future__ import annotations

from tqdm import tqdm


class ProgressBar(tqdm):
    # No monitor thread: it only tunes refresh rates, and it would outlive a one-shot job run inside a
    # bigger program (the app, the tests).
    monitor_interval = 0
