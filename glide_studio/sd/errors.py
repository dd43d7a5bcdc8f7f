"""What goes wrong with a Stable Diffusion model, in words for the user."""

from __future__ import annotations

from glide_studio.pipelines.errors import PipelineError

INSTALL_HINT = ('Stable Diffusion models need the optional sd extra: pip install "glide-studio[sd]" '
                '(or pip install -e ".[sd]" in a checkout)')


class SDError(PipelineError):
    """A Stable Diffusion run or model that cannot go ahead as asked."""


class SDUnavailableError(SDError):
    """The sd extra is not installed."""


class SDModelError(SDError):
    """A model that cannot be found, fetched or read."""
