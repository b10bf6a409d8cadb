"""Formula operators on the prediction head: mul <-> add, div -> mul, the additive head U_I - R,
and the temperature shared across contexts.

They act on the *head region* of each prediction symbol P (a formula's left-hand side, else a
probe's output): the ops that compute P from the formula's right-hand-side symbols (or, with no
formula, from any other symbol, inside the module that computes P). The symbols' own internals
(M's softplus, the bottleneck's mu + sigma * eps) are not the formula and are left alone.
"""

from __future__ import annotations

import operator as py_operator
from typing import TYPE_CHECKING, Iterator

import torch
import torch.fx as fx

from alignguard.mutate import tracing
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator
from alignguard.mutate.operators._common import BINARY, model_edit, name_of, op_name, replace_uses, suggest, where

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
APPLIES_TO = ("a binary op computing a prediction symbol (a formula's left-hand side or a probe's output) "
              "from other symbols")


def head_region(analysis: "ModelAnalysis") -> list[tuple[str, fx.Node]]:
    """(prediction symbol, node) for every node of each head region, in graph order."""
    found: dict[fx.Node, str] = {}
    symbol_nodes = set(analysis.symbol_nodes.values())
    for prediction in analysis.prediction_symbols():
        target = analysis.symbol_nodes[prediction]
        has_formula = any(f.parsed.lhs == prediction for f in analysis.spec.formulas)
        inputs = {analysis.symbol_nodes[s] for s in analysis.formula_inputs(prediction) if s in analysis.symbol_nodes}
        for node in [*analysis.ancestors(target), target]:
            if node in symbol_nodes - {target} or node.op not in ("call_function", "call_method"):
                continue
            if not inputs & analysis.ancestors(node):
                continue
            if not has_formula and tracing.owner_of(node) != tracing.owner_of(target):
                continue
            found.setdefault(node, prediction)
    order = {node: i for i, node in enumerate(analysis.graph.nodes)}
    return sorted(((p, n) for n, p in found.items()), key=lambda item: order[item[1]])


def render(node: object, analysis: "ModelAnalysis", region: set, depth: int = 0) -> str:
    """An op of the head region as an expression over symbol names, e.g. `(M * U_I + B) / T`."""
    symbol = isinstance(node, fx.Node) and node in set(analysis.symbol_nodes.values())
    if isinstance(node, fx.Node) and node in region and (depth == 0 or not symbol):
        kind = op_name(node)
        if kind in _SYMBOL and len(node.args) >= 2 and depth < 4:
            text = f"{render(node.args[0], analysis, region, depth + 1)} {_SYMBOL[kind]} " \
                   f"{render(node.args[1], analysis, region, depth + 1)}"
            return f"({text})" if depth else text
    return name_of(node, analysis)


def _swap_to(kind: str):
    def change(graph: fx.Graph, node: fx.Node, module) -> None:
        node.op, node.target = "call_function", BINARY[kind]
        node.args, node.kwargs = tuple(node.args[:2]), {}

    return change


def _arith_mutants(analysis: "ModelAnalysis", source: str, target: str) -> Iterator[Mutant]:
    region_items = head_region(analysis)
    region = {node for _, node in region_items}
    for prediction, node in region_items:
        if op_name(node) != source or len(node.args) < 2:
            continue
        ref = tracing.ref_of(node, analysis.graph)
        before = render(node, analysis, region)
        a, b = (render(arg, analysis, region, 1) for arg in node.args[:2])
        after = f"{a} {_SYMBOL[target]} {b}"
        formula = next((f.equation for f in analysis.spec.formulas if f.parsed.lhs == prediction), None)
        yield Mutant(
            f"arith.{source}_to_{target}", ref.label(),
            f"{source} -> {target} in {prediction}: `{before}` becomes `{after}`{where(node)}",
            (f"formula `{formula}` is declared but did not catch a changed operator: the formula check must "
             "compare operator kinds, not only which symbols meet" if formula else
             f"state the design equation for {prediction} in `formulas` (e.g. `{prediction} = (M * U_I + B) / T`): "
             "formula.* matches its operators in the graph"),
            edit_model=model_edit(ref, _swap_to(target), f"arith.{source}_to_{target}"),
        )


@operator("arith.mul_to_add", "a product of the prediction head becomes a sum", APPLIES_TO)
def mul_to_add(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _arith_mutants(analysis, "mul", "add")


@operator("arith.add_to_mul", "a sum of the prediction head becomes a product", APPLIES_TO)
def add_to_mul(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _arith_mutants(analysis, "add", "mul")


@operator("arith.div_to_mul", "a division of the prediction head becomes a product", APPLIES_TO)
def div_to_mul(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _arith_mutants(analysis, "div", "mul")


def _split_by_role(node: fx.Node, analysis: "ModelAnalysis") -> tuple[fx.Node, fx.Node] | None:
    """(invariant-only operand, context-only operand) of a binary op, if it mixes exactly those."""
    a, b = (node.args + (None, None))[:2]
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return None
    for x, c in ((a, b), (b, a)):
        if analysis.only_from(x, "invariant") and analysis.only_from(c, "context"):
            return x, c
    return None


def _additive(x_index: int):
    def change(graph: fx.Graph, node: fx.Node, module) -> None:
        x, c = node.args[x_index], node.args[1 - x_index]
        node.op, node.target, node.args, node.kwargs = "call_function", py_operator.sub, (x, c), {}

    return change


@operator("head.additive", "the multiplicative modulation M * U_I becomes the additive U_I - M",
          "a product of an invariant-only term (U_I) and a context-only term (M) in the prediction head")
def additive_head(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    region_items = head_region(analysis)
    region = {node for _, node in region_items}
    for prediction, node in region_items:
        split = _split_by_role(node, analysis) if op_name(node) == "mul" else None
        if split is None:
            continue
        x, c = split
        ref = tracing.ref_of(node, analysis.graph)
        u, r = render(x, analysis, region, 1), render(c, analysis, region, 1)
        yield Mutant(
            "head.additive", ref.label(),
            f"additive head in {prediction}: `{render(node, analysis, region)}` becomes `{u} - {r}` "
            f"(translation-symmetric){where(node)}",
            suggest(bool(analysis.spec.forbidden_patterns) and analysis.spec.probes.translation_symmetry is not None,
                    f"`forbidden_patterns: [{{kind: additive_mix, left: {_first(analysis, 'invariant')}, right: "
                    f"{_first(analysis, 'context')}, on_path_to: {prediction}}}]` and "
                    f"`probes.translation_symmetry: {{shift: {u}, output: {prediction}}}`",
                    f"an additive_mix pattern and a translation probe, yet `{u} - {r}` passed: pattern.forbidden "
                    f"must match an x-only term minus a c-only term, the probe must shift {u} and {r} together"),
            edit_model=model_edit(ref, _additive(list(node.args).index(x)), "head.additive"),
        )


def _first(analysis: "ModelAnalysis", role: str) -> str:
    return next(iter(analysis.spec.input_with_role(role)), role)


def _batch_mean(graph: fx.Graph, node: fx.Node, module) -> None:
    with graph.inserting_after(node):
        mean = graph.call_function(torch.mean, (node,), {"dim": 0, "keepdim": True})
    with graph.inserting_after(mean):
        shared = graph.call_method("expand_as", (mean, node))
    replace_uses(graph, node, shared)


@operator("context.shared", "the temperature T(c) is replaced by its batch mean, one T for every context",
          "a division in the prediction head by a context-only term (the temperature T)")
def shared_temperature(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    seen = set()
    for prediction, node in head_region(analysis):
        divisor = node.args[1] if op_name(node) == "div" and len(node.args) > 1 else None
        if not isinstance(divisor, fx.Node) or divisor in seen or not analysis.only_from(divisor, "context"):
            continue
        seen.add(divisor)
        ref = tracing.ref_of(divisor, analysis.graph)
        name = name_of(divisor, analysis)
        context = _first(analysis, "context")
        yield Mutant(
            "context.shared", name,
            f"temperature shared across {context}: {name} (divisor of {prediction}) replaced by its batch mean"
            f" in '{ref.owner or 'model'}'{where(divisor)}",
            suggest(
                name in (analysis.spec.probes.batch_independence.symbols
                         if analysis.spec.probes.batch_independence else []),
                f"add `probes.batch_independence: {{symbols: [{name}]}}`: d {name}_i / d {context}_j must be 0 "
                f"for i != j in eval mode, and a batch mean breaks it (`flow.required: {{from: {context}, to: "
                f"{name}}}` still holds, so no flow rule can catch this)",
                f"probes.batch_independence for {name}, which should have caught a batch mean",
            ),
            edit_model=model_edit(ref, _batch_mean, "context.shared"),
        )
