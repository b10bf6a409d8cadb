"""Mutation operators: each finds where it applies in the analysed model and yields mutants.

An operator is registered with `@operator(...)`; a family module holds related operators.
`applies_to` says, for the report, what an operator looks for when it finds nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis
    from alignguard.mutate.mutant import Mutant

FAMILIES = ("noise", "arithmetic", "positivity", "routing", "losses", "bypass")


@dataclass(frozen=True)
class Operator:
    id: str
    summary: str  # what the mutant does, for `--list` and the docs
    applies_to: str  # what it needs in the model, for "did not apply" lines
    generate: Callable[["ModelAnalysis"], Iterable["Mutant"]]
    needs_graph: bool = True  # needs the whole-model fx trace to find its targets


_OPERATORS: dict[str, Operator] = {}


def operator(op_id: str, summary: str, applies_to: str, needs_graph: bool = True):
    def register(generate):
        _OPERATORS[op_id] = Operator(op_id, summary, applies_to, generate, needs_graph)
        return generate

    return register


def all_operators() -> list[Operator]:
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    return list(_OPERATORS.values())
