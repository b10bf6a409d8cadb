"""What the probe checks share: one SymbolRunner per check run, inputs, and error mapping."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from alignguard.results import Where

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext
    from alignguard.probes.runtime import SymbolRunner


def runner(context: "CheckContext") -> "SymbolRunner":
    from alignguard.probes.runtime import SymbolRunner

    return context.memo("probes:runner", lambda: SymbolRunner(context.model, context.spec.symbols))


def ran_on(context: "CheckContext", symbols, inputs: dict, vary) -> str:
    """What a read-only eval run of `symbols` varying `vary` executes: a validated slice (the
    smallest submodule that computes them from the inputs) or the whole model, and why."""
    from alignguard.probes.runtime import ForwardError, SymbolError

    try:
        return runner(context).plan(symbols, inputs, train=False, seed=probe_seed(context), vary=vary).describe()
    except (SymbolError, ForwardError):
        return "whole model"


def probe_inputs(context: "CheckContext", index: int = 0) -> dict:
    """Forward inputs for probes: the first `probes.examples` rows of the example batch
    (probes test per-example properties; more rows only cost time)."""
    from alignguard.modelfile.loader import forward_inputs

    inputs = forward_inputs(context.model, context.batch(index))
    rows = context.spec.probes.examples
    return {name: _head(value, rows) for name, value in inputs.items()}


def _head(value, rows: int):
    import torch

    return value[:rows] if isinstance(value, torch.Tensor) and value.dim() > 0 else value


def probe_seed(context: "CheckContext") -> int:
    return context.spec.entry_points.seed


@contextmanager
def user_forward(context: "CheckContext") -> Iterator[None]:
    """Turn an exception raised by the model's forward into a ModelFileError paragraph."""
    from alignguard.probes.runtime import ForwardError

    try:
        yield
    except ForwardError as exc:
        raise context.model_file.forward_error(exc.original, on="a probe's intervened example batch") from None


def symbol_where(context: "CheckContext", name: str, inputs: dict) -> Where:
    """The module that produces a symbol, found by running the model (never captures a graph)."""
    from alignguard.probes.runtime import ForwardError, SymbolError

    try:
        site = runner(context).site(name, inputs, train=False, seed=probe_seed(context))
    except (SymbolError, ForwardError):
        return Where()
    return site_where(site)


def site_where(site) -> Where:
    return Where(module=site.module, file=site.file, line=site.line)


def max_abs_diff(a, b) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0
