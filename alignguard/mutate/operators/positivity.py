"""Positivity removed: the softplus (exp, sigmoid, ...) that keeps a symbol > 0 becomes identity,
where the spec relies on that sign (a positivity probe, a range from 0, a formula that divides by it,
logs it or defines it, a noise scale)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch.fx as fx

from alignguard.graph.vocabulary import TRANSPARENT_OPS
from alignguard.mutate import tracing
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator
from alignguard.mutate.operators._common import model_edit, op_name, replace_uses, suggest, where
from alignguard.mutate.report import NotApplicable
from alignguard.spec.signs import sign_reliance

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

POSITIVE_OPS = frozenset({"softplus", "exp", "sigmoid", "relu", "abs", "square", "elu"})


def positivity_op(node: fx.Node, analysis: "ModelAnalysis") -> fx.Node | None:
    """Walk back from a symbol through shape ops and shifts/scales by constants to the op that
    makes it positive (M = softplus(h).squeeze(-1) + m_min finds the softplus)."""
    for _ in range(16):
        kind = op_name(node, analysis)
        if kind in POSITIVE_OPS:
            return node
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        constant_affine = kind in ("add", "sub", "mul", "div") and len(tensors) == 1
        if not (kind in TRANSPARENT_OPS or constant_affine) or not tensors:
            return None
        node = tensors[0]
    return None


def _identity(graph: fx.Graph, node: fx.Node, module) -> None:
    replace_uses(graph, node, node.args[0])
    graph.erase_node(node)


@operator("positivity.removed", "the op that keeps a symbol positive (softplus, exp, ...) becomes identity",
          "a symbol computed by softplus/exp/sigmoid/relu/abs/square, up to shape ops and constant shifts")
def removed(analysis: "ModelAnalysis") -> Iterator[Mutant | NotApplicable]:
    """A mutant only where the spec relies on the symbol's sign (spec/signs.py): removing the op that
    makes a sign-free symbol positive (DANN's ReLU features) is an equivalent mutant for that design,
    listed as not applicable with what to state if the design does need the sign."""
    reliance = sign_reliance(analysis.spec)
    seen = set()
    for symbol, node in analysis.symbol_nodes.items():
        positive = positivity_op(node, analysis)
        if positive is None or positive in seen or not isinstance(positive.args[0], fx.Node):
            continue
        seen.add(positive)
        ref = tracing.ref_of(positive, analysis.graph)
        kind = op_name(positive, analysis)
        site = f"{kind} in '{ref.owner or 'model'}'{where(positive)}"
        if symbol not in reliance:
            yield NotApplicable(
                "positivity.removed", symbol,
                f"the spec states no sign for {symbol}, so removing its {site} breaks no design rule; add "
                f"`probes.positivity: {{symbols: [{symbol}]}}` (or `ranges` with `min: 0`) if the design needs "
                f"{symbol} > 0")
            continue
        declared = symbol in (analysis.spec.probes.positivity.symbols if analysis.spec.probes.positivity else [])
        yield Mutant(
            "positivity.removed", symbol,
            f"positivity of {symbol} removed: {site} -> identity, {symbol} can be <= 0",
            suggest(declared,
                    f"the spec relies on {symbol} > 0 ({'; '.join(reliance[symbol])}), yet {symbol} without its "
                    f"{kind} passed: add `probes.positivity: {{symbols: [{symbol}]}}`, which searches for inputs "
                    f"driving {symbol} to 0 or below",
                    f"`probes.positivity` for {symbol}, yet {symbol} without its {kind} passed: random extreme "
                    f"contexts did not drive {symbol} below 0 (small initial weights): raise "
                    "`probes.positivity.scale`, or make the probe search for a minimising context (gradient "
                    f"descent on it) or check that {symbol}'s last value-changing op is positive-valued"),
            edit_model=model_edit(ref, _identity, "positivity.removed"),
        )
