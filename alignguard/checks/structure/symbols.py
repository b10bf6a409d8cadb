"""symbol.bound: every design symbol resolves to a node of the captured graph.

Other checks call `resolve_symbol` to turn a spec symbol into a graph node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.graph.model_graph import ModelGraph
from alignguard.results import CheckResult, Where, failed, passed
from alignguard.spec.model import SymbolBinding


@dataclass(frozen=True)
class Resolution:
    node: str | None
    found: str  # what the graph has there, for a failure message


def resolve_binding(graph: ModelGraph, binding: SymbolBinding, shape=None) -> Resolution:
    """The graph node of a binding; for a `slice`/`chunk` of a tensor, the node that takes those elements
    (`shape`, the tensor's real shape, lets a slice find a chunk of the same elements and back)."""
    whole = _resolve_whole(graph, binding)
    if binding.part_key is None or whole.node is None:
        return whole
    from alignguard.graph.chunks import part_node

    node = part_node(graph, whole.node, binding, shape)
    if node is None:
        how = (f"takes `{binding.slice.strip()}` of" if binding.slice is not None
               else f"splits into {binding.chunk[1]} chunks (`.chunk(n, dim=-1)`)")
        return Resolution(None, f"{binding.describe()}: the graph never {how} node {whole.node} (it takes other "
                          "elements of it, or uses it whole)")
    return Resolution(node, f"node {node}")


def binding_shape(context: CheckContext, name: str):
    """The real shape of the tensor a slice/chunk-bound symbol is part of (None for other bindings,
    or when running the model cannot read it); a part that does not fit it is a spec error here."""
    if context.spec.symbols[name].part_key is None:
        return None
    return context.memo("symbol_shapes", lambda: _part_shapes(context)).get(name)


def _part_shapes(context: CheckContext) -> dict:
    import torch

    from alignguard.checks.running import runner, user_forward
    from alignguard.modelfile.loader import forward_inputs
    from alignguard.probes.runtime import SymbolError

    names = [n for n, b in context.spec.symbols.items() if b.part_key is not None]
    inputs, shapes = forward_inputs(context.model, context.batch(0)), {}
    for name in names:  # one by one: a symbol that cannot be read leaves the others' shapes
        try:
            with torch.no_grad(), user_forward(context):
                seen = runner(context).run(inputs, train=True, seed=context.spec.entry_points.seed,
                                           observe=[name], whole=True)
            shapes[name] = tuple(seen[name].shape)
        except SymbolError:
            continue
    return shapes


def _resolve_whole(graph: ModelGraph, binding: SymbolBinding) -> Resolution:
    if binding.output is not None:
        node = graph.outputs.get(binding.output)
        keys = ", ".join(sorted(graph.outputs)) or "none"
        return Resolution(node, f"forward outputs: {keys}")
    calls = graph.module_outputs(binding.module)
    if not calls:
        return Resolution(None, f"module '{binding.module}' is never called in forward")
    outputs = calls[-1].outputs
    index = binding.index if binding.index is not None else 0
    if binding.index is None and len(outputs) > 1:
        return Resolution(None, f"module '{binding.module}' returns {len(outputs)} values; add `index:`")
    if index >= len(outputs) or outputs[index] is None:
        return Resolution(None, f"module '{binding.module}' returns {len(outputs)} tensor value(s)")
    return Resolution(outputs[index], f"node {outputs[index]}")


def resolve_symbol(context: CheckContext, name: str, graph: ModelGraph | None = None) -> Resolution:
    return resolve_binding(graph or context.graph, context.spec.symbols[name], binding_shape(context, name))


def element_nodes(context: CheckContext, name: str, graph: ModelGraph | None = None):
    """Graph nodes of a design element (an input, a symbol or a component) as positions in
    `graph.index` (an integer array), or the Resolution saying why there are none.

    A component stands for every node computed inside its module plus what the module returned.
    """
    graph = graph or context.graph
    spec = context.spec
    if name in spec.inputs:
        node = graph.inputs.get(name)
        return graph.index.positions([node]) if node else Resolution(None, f"forward takes no tensor argument '{name}'")
    parts = spec.input_parts()
    if name in parts:
        return part_nodes(context, name, graph)
    if name in spec.symbols:
        resolution = resolve_symbol(context, name, graph)
        return graph.index.positions([resolution.node]) if resolution.node else resolution
    path = spec.components[name].module
    nodes = graph.module_nodes(path)
    if len(nodes) == 0:
        return Resolution(None, f"module '{path}' computes nothing in the graph (never called, or renamed)")
    return nodes


def part_nodes(context: CheckContext, part: str, graph: ModelGraph | None = None):
    """Positions of the nodes that read a named input part (see ModelGraph.part_readers), or a Resolution."""
    graph = graph or context.graph
    input_name, text = context.spec.input_parts()[part]
    if input_name not in graph.inputs:
        return Resolution(None, f"forward takes no tensor argument '{input_name}' (part '{part}' is {input_name}{text})")
    value = context.batch(0).get(input_name)
    shape = tuple(getattr(value, "shape", ()))
    selection = context.spec.inputs[input_name].selection(part)
    from alignguard.spec.selection import read_elements

    if read_elements(selection, shape) is None:
        return Resolution(None, f"part '{part}' = {input_name}{text} does not fit {input_name}'s shape {list(shape)} "
                                "in the example batch")
    readers = graph.part_readers(input_name, selection, shape)
    if not readers:
        return Resolution(None, f"no node reads part '{part}' = {input_name}{text}")
    return graph.index.positions(readers)


def design_names(context: CheckContext, graph: ModelGraph | None = None):
    """Names for rendering nodes in the design's words (symbols bound in the spec win)."""
    from alignguard.graph.analysis import Names

    graph = graph or context.graph
    return Names(graph, {name: resolve_symbol(context, name, graph).node for name in context.spec.symbols})


def symbol_where(graph: ModelGraph, node: str | None) -> Where:
    if node is None or node not in graph.graph:
        return Where()
    data = graph.node(node)
    return Where(module=data.get("scope") or None, node=node, file=data.get("file"), line=data.get("line"))


class SymbolCheck(Check):
    ids = ("symbol.bound",)
    explanations = {
        "symbol.bound": (
            "Every design symbol (z_I, U_I, M, B, T, logit, ...) is bound in the spec to a place in the "
            "implementation: a key of the dict forward returns, or the output of a module (an element of "
            "its tuple output with `index`), optionally a part of that tensor: `slice: \"[:, :8]\"` (the "
            "indexing language of input parts) or its sugar `chunk: [i, n]`. A part is the graph node that "
            "takes those elements of the tensor, however the model takes them (`t[:, :8]`, `narrow`, "
            "`t.chunk(2, -1)[0]`, `t.split(8, -1)[0]`), judged on the tensor's real shape; every other check "
            "reads, differentiates and edits only those elements. The check fails when that place does not "
            "exist in the captured graph, which usually means the design element was never implemented; a "
            "slice that does not fit the real tensor (too many indices, out of range, empty) is a spec error "
            "(exit 2) at its line. Fix: return the tensor from forward under that key, or correct the binding."
        )
    }

    def applies(self, spec) -> bool:
        return bool(spec.symbols)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for name, binding in context.spec.symbols.items():
            resolution = resolve_symbol(context, name)
            element = f"symbol {name}"
            if resolution.node is None:
                yield failed(
                    "symbol.bound", element, f"{name} at {binding.describe()}", resolution.found,
                    fix=f"compute {name} in the model and expose it as {binding.describe()}, "
                    "or bind the symbol to where it is computed",
                )
            else:
                yield passed("symbol.bound", element, f"{name} at {binding.describe()}",
                             f"node {resolution.node}", where=symbol_where(context.graph, resolution.node))
