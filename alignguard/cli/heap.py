"""Keep the garbage collector off torch's import-time objects in short CLI runs.

`import torch` leaves about a million objects that live until the process ends. Every full
collection after it, and the one at interpreter exit, walks all of them again: 0.3-0.4 s of a
2 s `alignguard check`. `gc.freeze()` moves everything alive at that moment into a generation
the collector never scans (the technique CPython documents for long-lived startup state).
"""

from __future__ import annotations

import gc

_frozen = False


def import_torch_and_freeze_heap() -> None:
    """Import torch, then freeze the heap once per process (later calls only import)."""
    global _frozen
    import torch  # noqa: F401  (imported for its side effect: the objects to freeze)

    if not _frozen:
        gc.freeze()
        _frozen = True
