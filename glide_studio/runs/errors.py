"""Errors of a run that a person can act on: each message says what to do."""

from __future__ import annotations


class RunError(Exception):
    """A run that cannot start or finish as asked."""


class ModelUnavailableError(RunError):
    """A network the request needs is not on this machine or could not be loaded."""


class PrecisionUnavailableError(RunError):
    """The recorded precision or device cannot run here, so the recorded pixels would not be repeated."""


class DeviceUnavailableError(RunError):
    """The device asked for does not exist on this machine (no CUDA, no such GPU)."""


class OutOfMemoryError(RunError):
    """The run did not fit in the device's memory; the message says what to reduce."""


OUT_OF_MEMORY_SIGNS = ("out of memory", "not enough memory", "can't allocate memory", "DefaultCPUAllocator",
                       "failed to allocate")
"""How torch words an allocation failure in the RuntimeError it raises (CPU allocator, CUDA, MPS)."""


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(sign in str(error) for sign in OUT_OF_MEMORY_SIGNS)
