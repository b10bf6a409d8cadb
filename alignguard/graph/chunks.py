"""Find the graph node of one chunk of a tensor: `t.chunk(n, dim)[i]` (a `chunk`/`split` node
reading `t`, then the tuple element `i`), so a symbol can be bound to half of a layer's output
(FiLM's gamma and beta, a VIB's mu and sigma from one Linear)."""

from __future__ import annotations

from alignguard.graph.analysis import operand_refs
from alignguard.graph.model_graph import ModelGraph


def chunk_node(graph: ModelGraph, whole: str, index: int, count: int) -> str | None:
    """The node holding chunk `index` of `count` of node `whole`, or None when the graph never splits
    `whole` into `count` chunks (it slices it some other way, or uses it whole)."""
    for split in graph.graph.successors(whole):
        data = graph.node(split)
        if data.get("op") not in ("chunk", "tensor_split") or operand_refs(graph, split)[:1] != [whole]:
            continue
        operands = data.get("operands", ())
        if len(operands) < 2 or operands[1] != count:
            continue
        for element in graph.graph.successors(split):
            element_operands = graph.node(element).get("operands", ())
            if graph.node(element).get("op") == "getitem_tuple" and len(element_operands) > 1 \
                    and element_operands[1] == index:
                return element
    return None
