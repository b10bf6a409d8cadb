"""Gradients at the level designs state them: on a module, a parameter tensor, or a symbol.

A module or a parameter pattern resolves to parameter names (their gradients come from the shared
per-term measurement). A symbol's gradient dL/d symbol is measured here: one train-mode forward
per batch that keeps the symbol's real tensor (read by `SymbolRunner`, so a chunk of a module's
output works too), then `autograd.grad(term, tensor)`. A stop-gradient (`detach`, `no_grad`,
`.sample()`) between the symbol and the term gives exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable, Mapping, Sequence

import torch


def parameters_of(model: torch.nn.Module, module_path: str | None = None, pattern: str | None = None,
                  trainable_only: bool = False) -> list[str]:
    """Parameter names under a module path ('' is the whole model) or matching a glob."""
    names = [n for n, p in model.named_parameters() if p.requires_grad or not trainable_only]
    if module_path is not None:
        prefix = f"{module_path}." if module_path else ""
        return [n for n in names if n.startswith(prefix)]
    return [n for n in names if fnmatchcase(n, pattern or "")]


@dataclass(frozen=True)
class SymbolGradient:
    """|dL/d symbol| of one term over the measured batches, and why it is zero when it is."""

    norm: float  # largest over batches
    status: str  # "alive", "zero" (an exact 0: stop-gradient on the way), "unreached" (no autograd path),
    #              "detached" (the symbol carries no gradient at all), "term_detached" (the term has no grad_fn)


def symbol_gradients(
    run: Callable[[int, dict], tuple[Mapping[str, torch.Tensor], Any]],
    terms_at: Callable[[dict, Any], Mapping[str, torch.Tensor]],
    batches: Sequence[dict],
    symbols: Sequence[str],
    select: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
) -> dict[str, dict[str, SymbolGradient]]:
    """{term: {symbol: SymbolGradient}} over the batches.

    `run(i, batch)` returns ({symbol: the real tensor forward computed}, forward's outputs);
    `terms_at(batch, outputs)` the loss terms; `select[symbol]` picks the symbol's part (a chunk)
    out of the gradient of the tensor it lives in.
    """
    result: dict[str, dict[str, SymbolGradient]] = {}
    for i, batch in enumerate(batches):
        tensors, outputs = run(i, batch)
        terms = terms_at(batch, outputs)
        for term_name, term in terms.items():
            row = result.setdefault(term_name, {})
            for symbol in symbols:
                measured = _one(term, tensors.get(symbol), select.get(symbol, lambda g: g))
                previous = row.get(symbol)
                if previous is None or _rank(measured) > _rank(previous):
                    row[symbol] = measured
    return result


def _one(term: torch.Tensor, tensor: torch.Tensor | None, select) -> SymbolGradient:
    if not isinstance(term, torch.Tensor) or term.grad_fn is None:
        return SymbolGradient(0.0, "term_detached")
    if tensor is None or not tensor.requires_grad:
        return SymbolGradient(0.0, "detached")
    (grad,) = torch.autograd.grad(term.reshape(()), [tensor], retain_graph=True, allow_unused=True)
    if grad is None:
        return SymbolGradient(0.0, "unreached")
    norm = float(select(grad).detach().double().norm())
    return SymbolGradient(norm, "alive" if norm > 0 else "zero")


def _rank(gradient: SymbolGradient) -> tuple[int, float]:
    return (gradient.status == "alive", gradient.norm)
