"""Exceptions raised by the checkpoints package; each message tells the user what to do next."""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class of every error about finding, downloading, verifying or loading weights."""


class UnknownCheckpointError(CheckpointError, KeyError):
    """A checkpoint name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingWeightsError(CheckpointError, FileNotFoundError):
    """Weights that should be on disk are not (e.g. the shipped demo models, or offline and not cached)."""


class OfflineError(CheckpointError):
    """A download was needed while offline mode forbids any network access."""


class DownloadError(CheckpointError):
    """The server answered with an error, or the transfer failed in a way that resuming will not fix."""


class DownloadInterruptedError(DownloadError):
    """The transfer stopped early (connection cut or stalled); the `.part` file is kept for resuming."""


class DownloadCancelledError(CheckpointError):
    """The consumer asked to stop; the `.part` file is kept for resuming."""


class DownloadLockedError(CheckpointError):
    """Another process is writing the same file right now."""


class InsufficientDiskSpaceError(CheckpointError):
    """Not enough free space for the download."""


class IntegrityError(CheckpointError):
    """A file's content does not match its recorded sha256 or size (corrupted or tampered with)."""


class HashNotRecordedError(IntegrityError):
    """No sha256 was ever recorded for a file, so it cannot be verified."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that would run code or build arbitrary objects; refused."""


class CheckpointFormatError(CheckpointError):
    """A file that is not a readable flat state dict of tensors."""
