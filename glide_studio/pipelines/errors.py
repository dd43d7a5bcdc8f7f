"""The pipelines' error type: a request that cannot be run, with a message a user can act on."""


class PipelineError(ValueError):
    """The request, its inputs or the loaded models do not fit together (the message says how)."""
