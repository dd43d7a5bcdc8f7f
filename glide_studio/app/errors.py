"""Errors the app reports to the user: each carries a message fit to show as is."""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error GLIDE Studio explains to the user instead of crashing."""


class ImageLoadError(StudioError):
    """A file could not be read as a picture."""


class ProjectError(StudioError):
    """A project file is missing, damaged or of an unknown version."""


class ModelUnavailableError(StudioError):
    """The chosen model's weights are not present or could not be loaded."""
