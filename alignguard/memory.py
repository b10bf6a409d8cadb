"""Hand the memory a finished phase freed back to the kernel before the check's costliest phase.

glibc keeps freed heap memory for the process's next allocations instead of returning it, and
fragments (a live block above a free region) keep it from shrinking the heap on its own. The
gradient measurement frees its first batch's training graph just before loss.descent copies θ
and perturbs it, the phase that sets the check's peak RSS: on the ResNet-50 layout 621 -> 572 MiB
when released there, and the peak 708-714 -> 691-696 MiB (docs/benchmarks.md §10.15). Elsewhere
(another C library) nothing happens.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Callable


def return_freed_memory() -> None:
    """glibc's malloc_trim(0): free pages of every arena go back to the kernel (a few ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator keeps its own policy
        return None
