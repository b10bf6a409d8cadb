"""Helpers the graph-based operators share: op names, design names for nodes, fx edits."""

from __future__ import annotations

import operator as py_operator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch.fx as fx

from alignguard.graph.vocabulary import normalise
from alignguard.mutate import fx_edit, tracing

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

BINARY = {"add": py_operator.add, "sub": py_operator.sub, "mul": py_operator.mul, "div": py_operator.truediv}


def op_name(node: fx.Node, analysis: "ModelAnalysis | None" = None) -> str:
    """The node's op in the checker's vocabulary (module calls by their class, e.g. softplus)."""
    if node.op in ("call_function", "call_method"):
        return normalise(tracing.target_name(node))
    if node.op == "call_module" and analysis is not None:
        return normalise(type(analysis.model.get_submodule(str(node.target))).__name__)
    return node.op


def where(node: fx.Node) -> str:
    line = tracing.source_line(node)
    if not line:
        return ""
    file, _, number = line.rpartition(":")
    return f" ({Path(file).name}:{number})"


def name_of(node: Any, analysis: "ModelAnalysis") -> str:
    """A node as a reader of the spec knows it: its symbol name, else its fx name."""
    if not isinstance(node, fx.Node):
        return repr(node)
    for symbol, symbol_node in analysis.symbol_nodes.items():
        if symbol_node is node:
            return symbol
    return node.name


def suggest(declared: bool, add: str, weak: str) -> str:
    """What would catch a survivor: the spec rule to add, or, when the spec already has it, what
    the check behind that rule must do better (a weak check, for its owner)."""
    return f"the spec declares {weak}" if declared else add


def component_of(path: str, analysis: "ModelAnalysis") -> str | None:
    """The spec component whose module is `path` or encloses it."""
    best = None
    for name, component in analysis.spec.components.items():
        module = component.module
        if path == module or path.startswith(module + "."):
            if best is None or len(module) > len(analysis.spec.components[best].module):
                best = name
    return best


def symbols_reached(node: fx.Node, analysis: "ModelAnalysis") -> list[str]:
    return [s for s, n in analysis.symbol_nodes.items() if n is node or node in analysis.ancestors(n)]


def output_ancestors(analysis: "ModelAnalysis") -> set[fx.Node]:
    outputs = [n for n in analysis.graph.nodes if n.op == "output"]
    return set().union(*(analysis.ancestors(n) for n in outputs)) if outputs else set()


def replace_uses(graph: fx.Graph, node: fx.Node, new: fx.Node) -> None:
    """Every user of `node` reads `new` instead (except `new` itself and what computes it)."""
    keep = {new} | _ancestors(new)
    node.replace_all_uses_with(new, delete_user_cb=lambda user: user not in keep)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, stack = set(), list(node.all_input_nodes)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def node_edit(ref: tracing.NodeRef, change: Callable[[fx.Graph, fx.Node, Any], None]) -> fx_edit.GraphEdit:
    """A graph edit that finds `ref` in the owner's code and applies `change(graph, node, module)`."""

    def edit(graph: fx.Graph, module) -> bool:
        node = tracing.find(graph, ref)
        if node is None:
            return False
        change(graph, node, module)
        return True

    return edit


def model_edit(ref: tracing.NodeRef, change, tag: str, eval_uses_train_code: bool = False):
    """A mutant's `edit_model`: apply a node change to the owner module of a fresh model."""

    def edit(model) -> None:
        fx_edit.edit_module(model, ref.owner, node_edit(ref, change), tag, eval_uses_train_code)

    return edit
