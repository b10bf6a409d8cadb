"""Choose a capture: torch.fx first; the reason it failed is kept for the report."""

from __future__ import annotations

from alignguard.errors import CaptureError
from alignguard.graph.model_graph import ModelGraph


def capture_graph(model, batch: dict) -> ModelGraph:
    from alignguard.graph.capture_fx import capture_fx

    try:
        return capture_fx(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise CaptureError(
            f"torch.fx could not trace the model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            where=type(model).__name__,
            fix="remove data-dependent Python control flow from forward, or use a capture fallback",
        ) from None
