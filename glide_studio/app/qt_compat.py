"""Work around PySide6 builds that return None from void methods without a reference (CPython < 3.12).

PySide6 6.12 (built for 3.12+, where None is immortal, PEP 683) hands back `Py_None` from every void
call without increasing its reference count. On CPython 3.11 each call then takes one reference away
from None, and after some thousands of calls (a few seconds of painting, or any processEvents loop)
the interpreter aborts with "none_dealloc: deallocating None". Giving None a huge reference count
makes it immortal in practice, as it is on 3.12+. Nothing happens on 3.12+ or other interpreters.
"""

from __future__ import annotations

import sys

_MARGIN = 1 << 48


def make_none_immortal() -> bool:
    """True when the workaround was needed (and is now in place)."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    import ctypes

    # ob_refcnt is the first field of every object in release builds of CPython.
    refcount = ctypes.c_ssize_t.from_address(id(None))
    if refcount.value < _MARGIN:
        refcount.value += _MARGIN
    return True
