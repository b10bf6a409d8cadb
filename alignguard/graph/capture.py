"""Choose a capture: torch.fx first (it sees the code, not one run of it); when fx cannot trace
the model, the eager recorder runs it on the example batch(es) and the report says why."""

from __future__ import annotations

from typing import Literal, Sequence

from alignguard.errors import CaptureError
from alignguard.graph.model_graph import ModelGraph
from alignguard.graph.sources import user_frame_of_exception

Method = Literal["auto", "fx", "eager"]


def capture_graph(model, batches: dict | Sequence[dict], training: bool = True,
                  method: Method = "auto") -> ModelGraph:
    """The model's forward graph. `batches`: one example batch or several (the eager recorder
    unions the paths every batch takes; fx needs none)."""
    from alignguard.graph.capture_eager import capture_eager
    from alignguard.graph.capture_fx import capture_fx

    batches = [batches] if isinstance(batches, dict) else list(batches)
    if not batches:
        raise CaptureError("no example batch to capture the model with", where=type(model).__name__,
                           fix="pass at least one example batch")
    note = ""
    if method in ("auto", "fx"):
        try:
            return capture_fx(model, training=training, batch=batches[0])
        except Exception as exc:  # fx raises many types for untraceable code
            if method == "fx":
                raise CaptureError(f"torch.fx could not trace the model ({fx_failure(exc)})",
                                   where=type(model).__name__,
                                   fix="remove data-dependent Python control flow from forward, "
                                   "or let alignguard fall back to the eager capture") from None
            note = f"torch.fx could not trace the model ({fx_failure(exc)}); the eager recorder ran it instead"
    try:
        return capture_eager(model, batches, training=training, note=note)
    except Exception as exc:
        where = user_frame_of_exception(exc) or type(model).__name__
        raise CaptureError(
            f"the model raised {type(exc).__name__} while running on the example batch: {_first_line(exc)}"
            + (f" ({note})" if note else ""),
            where=where, fix="make forward run on the batch example_batch() returns",
        ) from None


def fx_failure(exc: BaseException) -> str:
    """Why fx failed, with the user's line: 'TraceError at model.py:12: symbolically traced ...'."""
    where = user_frame_of_exception(exc)
    return f"{type(exc).__name__}{f' at {where}' if where else ''}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def eval_graph(context) -> ModelGraph:
    """The graph captured in eval mode (memoised), for the documented eval behaviour."""
    return context.memo("capture:eval", lambda: capture_graph(context.model, context.batch(0), training=False))
