"""What the probe checks share: one SymbolRunner per check run, inputs, and error mapping.

The runner, the example inputs and the forward-error mapping live in checks/running.py, shared with the
structure room's identifiability check, which also intervenes on the real model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alignguard.checks.running import eval_pair, probe_inputs, probe_seed, runner, user_forward  # noqa: F401 (the probes' door)
from alignguard.results import Where

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext


def ran_on(context: "CheckContext", symbols, inputs: dict, vary) -> str:
    """What a read-only eval run of `symbols` varying `vary` executes: a validated slice (the
    smallest submodule that computes them from the inputs) or the whole model, and why."""
    from alignguard.probes.runtime import ForwardError, SymbolError

    try:
        return runner(context).plan(symbols, inputs, train=False, seed=probe_seed(context), vary=vary).describe()
    except (SymbolError, ForwardError):
        return "whole model"


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
