"""Find the graph node of one part of a tensor, the node a symbol bound with `slice:` or `chunk:` is:
a selection of it (`t[:, :8]`, `narrow`, `select`) or an element of a split of it (`t.chunk(n, dim)[i]`,
`t.split(size, dim)[i]`), so a symbol can be half of a layer's output (FiLM's gamma and beta, a VIB's
mu and sigma from one Linear) whichever way the model takes that half.

With the tensor's real shape (read by running the model), a slice and a chunk that take the same
elements are the same node (`slice: "[:, 4:]"` finds `t.chunk(2, -1)[1]`); without it, only the
same text matches (a `chunk: [i, n]` binding, a `chunk(n)` call's element i).
"""

from __future__ import annotations

from typing import Sequence

from alignguard.graph.analysis import operand_refs
from alignguard.graph.model_graph import ModelGraph
from alignguard.spec.model import SliceFitError, SymbolBinding
from alignguard.spec.selection import parse_selection, same_elements, split_selection


def part_node(graph: ModelGraph, whole: str, binding: SymbolBinding, shape: Sequence[int] | None) -> str | None:
    """The node holding the binding's part of node `whole` (a tensor of `shape`, when known), or None
    when the graph never takes that part of it (it slices it some other way, or uses it whole)."""
    try:
        target = binding.selection(shape) if shape is not None else (
            parse_selection(binding.slice, of="tensor") if binding.slice is not None else None)
    except SliceFitError:
        return None
    for consumer in graph.graph.successors(whole):
        data = graph.node(consumer)
        if operand_refs(graph, consumer)[:1] != [whole]:
            continue
        if target is not None and data.get("selection") is not None:
            if same_elements(data["selection"], target, shape):
                return consumer
        split = data.get("split") or _legacy_split(data)
        if split is None:
            continue
        for element in graph.graph.successors(consumer):
            operands = graph.node(element).get("operands", ())
            if graph.node(element).get("op") != "getitem_tuple" or len(operands) < 2 or not isinstance(operands[1], int):
                continue
            if target is not None and shape is not None:
                taken = split_selection(split, operands[1], shape)
                if taken is not None and same_elements(taken, target, shape):
                    return element
            elif binding.chunk is not None and split[0] == "chunk" and (split[1], operands[1]) == binding.chunk[::-1]:
                return element
    return None


def _legacy_split(data: dict) -> tuple | None:
    """A `chunk(n)` / `tensor_split(n)` node whose dimension was not recorded (not an integer literal):
    the last one, as `chunk:` bindings assume."""
    operands = data.get("operands", ())
    if data.get("op") in ("chunk", "tensor_split") and len(operands) >= 2 and isinstance(operands[1], int):
        return ("chunk", operands[1], -1)
    return None
