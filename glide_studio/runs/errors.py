"""Errors of a run that a person can act on: each message says what to do."""

from __future__ import annotations


class RunError(Exception):
    """A run that cannot start or finish as asked."""


class ModelUnavailableError(RunError):
    """A network the request needs is not on this machine or could not be loaded."""


class PrecisionUnavailableError(RunError):
    """The recorded precision or device cannot run here, so the recorded pixels would not be repeated."""
