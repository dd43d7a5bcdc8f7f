"""The diffusion layer's own error type, so callers can tell bad settings from bugs."""


class DiffusionError(ValueError):
    """A schedule, respacing or sampler setting that cannot be used (the message says why)."""
