"""Noise operators: the bottleneck's random draw removed, kept only in eval, or drawn but unused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch
import torch.fx as fx

from alignguard.mutate import tracing
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator
from alignguard.mutate.operators._common import (component_of, model_edit, op_name, output_ancestors,
                                                 replace_uses, suggest, symbols_reached, where)

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

# Draws that carry a design's noise (dropout, permutations and index draws are not the design's ε).
NOISE_OPS = frozenset({"randn", "rand", "normal", "rsample", "sample"})
APPLIES_TO = "a random draw (randn/rand/normal/rsample/sample) whose value reaches a forward output"


def noise_sources(analysis: "ModelAnalysis") -> list[fx.Node]:
    reaching = output_ancestors(analysis)
    return [n for n in analysis.graph.nodes
            if n.op in ("call_function", "call_method") and op_name(n) in NOISE_OPS and n in reaching]


def _remove(graph: fx.Graph, node: fx.Node, module) -> None:
    """Replace the draw by zeros of its shape, without the draw where the shape is known."""
    target = node.target
    with graph.inserting_after(node):
        if target in (torch.randn_like, torch.rand_like):
            zeros = graph.call_function(torch.zeros_like, (node.args[0],))
        elif target in (torch.randn, torch.rand):
            kwargs = {k: v for k, v in node.kwargs.items() if k != "generator"}
            zeros = graph.call_function(torch.zeros, node.args, kwargs)
        else:
            zeros = graph.call_function(torch.zeros_like, (node,))
    replace_uses(graph, node, zeros)
    if not node.users:
        graph.erase_node(node)


def _unused(graph: fx.Graph, node: fx.Node, module) -> None:
    """Keep the draw, but let nothing read its value (zeros of its shape take its place)."""
    with graph.inserting_after(node):
        zeros = graph.call_function(torch.zeros_like, (node,))
    replace_uses(graph, node, zeros)


def _declared(analysis: "ModelAnalysis", symbol: str) -> bool:
    """The spec already asks for noise reaching `symbol`, by structure and by probe."""
    spec = analysis.spec
    stochastic = any(c.stochastic and c.stochastic.symbol == symbol for c in spec.components.values())
    return stochastic and spec.probes.noise is not None and spec.probes.noise.symbol == symbol


def _context(node: fx.Node, analysis: "ModelAnalysis") -> tuple[str, str, str]:
    """(symbol the noise must reach, component name, describe the draw)."""
    ref = tracing.ref_of(node, analysis.graph)
    reached = symbols_reached(node, analysis)
    declared = [c.stochastic.symbol for c in analysis.spec.components.values() if c.stochastic]
    symbol = next((s for s in declared if s in reached), reached[0] if reached else "the code")
    component = component_of(ref.owner, analysis) or ref.owner or "model"
    draw = f"{node.target if isinstance(node.target, str) else node.target.__name__} in " \
           f"'{ref.owner or 'model'}'{where(node)}"
    return symbol, component, draw


@operator("noise.removed", "the random draw is replaced by zeros (a deterministic bottleneck)", APPLIES_TO)
def removed(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    for node in noise_sources(analysis):
        ref = tracing.ref_of(node, analysis.graph)
        symbol, component, draw = _context(node, analysis)
        yield Mutant(
            "noise.removed", ref.label(), f"noise removed: {draw} replaced by zeros, {symbol} is deterministic",
            suggest(_declared(analysis, symbol),
                    f"declare `components.{component}.stochastic: {{symbol: {symbol}}}` (noise checks) and "
                    f"`probes.noise: {{symbol: {symbol}}}`: a bottleneck without noise compresses nothing",
                    f"`stochastic` and `probes.noise` for {symbol}, yet a model with no draw passed: noise.present "
                    f"must require a random call reaching {symbol}, probe.noise two seeds giving different {symbol}"),
            edit_model=model_edit(ref, _remove, "noise.removed"),
        )


@operator("noise.eval_only", "noise drawn only in eval mode, training is deterministic", APPLIES_TO)
def eval_only(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    for node in noise_sources(analysis):
        ref = tracing.ref_of(node, analysis.graph)
        symbol, component, draw = _context(node, analysis)
        yield Mutant(
            "noise.eval_only", ref.label(), f"noise only in eval: {draw} removed while training, drawn in eval",
            suggest(_declared(analysis, symbol) and analysis.spec.probes.noise.eval == "deterministic",
                    f"`probes.noise: {{symbol: {symbol}, eval: deterministic}}` and `components.{component}."
                    f"stochastic: {{symbol: {symbol}, eval: deterministic}}`: train must draw, eval must not",
                    f"noise in train and none in eval for {symbol}, yet a model drawing only in eval passed: the "
                    "noise checks must look at train mode and at eval mode separately"),
            edit_model=model_edit(ref, _remove, "noise.eval_only", eval_uses_train_code=True),
        )


@operator("noise.unused", "the random draw is computed but its value is never used", APPLIES_TO)
def unused(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    for node in noise_sources(analysis):
        ref = tracing.ref_of(node, analysis.graph)
        symbol, component, draw = _context(node, analysis)
        yield Mutant(
            "noise.unused", ref.label(), f"noise unused: {draw} still drawn, but {symbol} no longer reads it",
            suggest(_declared(analysis, symbol),
                    f"`components.{component}.stochastic: {{symbol: {symbol}, through_scale: true}}`: the draw must "
                    f"reach {symbol} through a product with sigma, a random call alone proves nothing",
                    f"noise for {symbol}, yet a draw whose value is discarded passed: noise.present must require "
                    f"a data path from the draw to {symbol}, not just a random call in the scope"),
            edit_model=model_edit(ref, _unused, "noise.unused"),
        )
