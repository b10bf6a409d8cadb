"""alignguard: prove a PyTorch model implements its design before training it.

Public API (imported on first use, so `import alignguard` stays light and never imports torch):

    spec = alignguard.Spec.from_dict({...})            # or Spec.from_yaml(text), spec.to_yaml()
    alignguard.check(spec, model) -> Report            # model: a model file path or an nn.Module
    alignguard.gate(spec, model, example_batch=...)    # raise MisalignedError listing the findings
    alignguard.assert_aligned(spec, model_path)        # the same as an AssertionError, for tests
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Spec", "check", "gate", "MisalignedError", "AlignguardError", "assert_aligned", "Report",
           "__version__"]

_LAZY = {
    "Spec": ("alignguard.spec.model", "Spec"),
    "check": ("alignguard.api", "check"),
    "gate": ("alignguard.gate", "gate"),
    "MisalignedError": ("alignguard.gate", "MisalignedError"),
    "AlignguardError": ("alignguard.errors", "AlignguardError"),
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
