"""alignguard: prove a PyTorch model implements its design before training it.

Public API (imported on first use, so `import alignguard` stays light and never imports torch):

    alignguard.check(spec, model_path) -> Report       # run every check, return the report
    alignguard.assert_aligned(spec, model_path)        # raise AssertionError listing the findings
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["check", "assert_aligned", "Report", "__version__"]

_LAZY = {
    "check": ("alignguard.api", "check"),
    "assert_aligned": ("alignguard.testing", "assert_aligned"),
    "Report": ("alignguard.results", "Report"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'alignguard' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
