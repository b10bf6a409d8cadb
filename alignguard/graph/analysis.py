"""Read-only analyses every structural check shares: naming nodes in the design's words,
rendering what a node computes, shortest chains through ordered waypoints, and which nodes
carry learned values. Everything here is one or a few linear passes over the graph; nothing
enumerates paths.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from alignguard.graph.model_graph import ModelGraph, Ref


class Names:
    """Display names for nodes: design symbols first, then forward output keys, inputs, params."""

    def __init__(self, graph: ModelGraph, symbols: Mapping[str, str | None] | None = None) -> None:
        self.graph = graph
        self._names: dict[str, str] = {}
        for name, node in graph.inputs.items():
            self._set(node, name)
        for key, node in graph.outputs.items():
            self._set(node, key)
        for name, node in (symbols or {}).items():
            if node is not None:
                self._set(node, name, force=True)

    def _set(self, node: str, name: str, force: bool = False) -> None:
        for target in (node, self.graph.skip_transparent(node)):
            if force or target not in self._names:
                self._names[target] = name

    def get(self, node: str) -> str | None:
        return self._names.get(node) or self._names.get(self.graph.skip_transparent(node))

    def describe(self, node: str, depth: int = 4, top: bool = True) -> str:
        """What a node computes, e.g. `div(sub(U_I, R_E), T)`, named operands where known."""
        graph = self.graph
        if not top and self.get(node):
            return self.get(node)
        node = graph.skip_transparent(node)
        data = graph.node(node)
        kind = data["kind"]
        if kind in ("input", "param"):
            return str(data.get("target") or node)
        if kind == "const":
            return "a constant baked into the trace" if data.get("baked") else f"constant {data.get('target') or node}"
        if depth <= 0:
            return "…"
        head = str(data.get("target") or node) if kind == "module" else data["op"]
        if kind == "random":  # randn_like(std) reads a shape: say so rather than `randn(std)`
            head = str(data.get("target") or head).rsplit(".", 1)[-1]
        parts = [self._operand(o, depth - 1) for o in data.get("operands", ()) if o is not None]
        if data["op"] in ("getitem_tuple",) and len(parts) == 2:
            return f"{parts[0]}[{parts[1]}]"
        return f"{head}({', '.join(parts)})"

    def _operand(self, operand, depth: int) -> str:
        if isinstance(operand, Ref):
            return self.describe(operand.node, depth, top=False)
        return f"{operand:g}" if isinstance(operand, float) else str(operand)

    def label(self, node: str) -> str:
        """Short label for a chain: `z_I = add (in bottleneck, model.py:12)`."""
        data = self.graph.node(node)
        name = self.get(node)
        if data["kind"] in ("input", "param"):
            return name or str(data.get("target") or node)
        what = data["op"] if data["kind"] != "module" else f"{data['op']} {data.get('target')}"
        file, line = self.graph.location(node)
        at = f"{file.rsplit('/', 1)[-1]}:{line}" if file and line else ""
        where = ", ".join(p for p in (f"in {data['scope']}" if data.get("scope") else "", at) if p)
        head = f"{name} = {what}" if name and name != what else what
        return f"{head} ({where})" if where else head


def shortest_chain(graph: ModelGraph, sources: np.ndarray, waypoints: list[np.ndarray],
                   targets: np.ndarray, limit: int = 1) -> list[list[str]]:
    """Shortest data-flow chains from any source through each waypoint set in order to a target.

    Every set is given as node positions in `graph.index`; the chains come back as node ids.

    One breadth-first search per leg (sources -> first waypoints -> ... -> targets), each from all
    the nodes the previous leg reached in its waypoint set at once: linear in graph size times the
    number of legs, in C. The last leg stops at targets, so each chain is a whole, minimal chain
    entering the targets at its own node. Returns up to `limit` chains, shortest last leg first.
    """
    index = graph.index
    starts = sources
    legs = []  # the predecessor array of each leg
    for leg, members in enumerate([*waypoints, targets]):
        if len(starts) == 0:
            return []
        wanted = index.mask(members)
        final = leg == len(waypoints)
        order, predecessors = index.search(starts, stop_at=wanted if final else None)
        legs.append(predecessors)
        starts = order[wanted[order]]  # in visiting order: nearest first
    return [_unwind(index, legs, int(end)) for end in starts[:limit]]


def _unwind(index, legs: list, end: int) -> list[str]:
    """Follow predecessors back leg by leg; a waypoint ends one leg and starts the next."""
    root = len(index)
    chain = [end]
    for predecessors in reversed(legs):
        previous = predecessors.tolist()  # list indexing: numpy scalar access is 5x slower in this loop
        node = chain[-1]
        while previous[node] != root:
            node = previous[node]
            chain.append(node)
    return index.names[chain[::-1]].tolist()


def learned_mask(graph: ModelGraph):
    """Which nodes' values depend on a trainable parameter (a param node or a module with weights),
    as a boolean mask over `graph.index.names`."""
    return graph.index.reach(np.flatnonzero(graph.index.learned))


def operand_refs(graph: ModelGraph, node: str) -> list[str]:
    return [o.node for o in graph.operands(node) if isinstance(o, Ref)]


def render_chain(names: Names, chain: list[str]) -> str:
    """`c → linear encoder.fc (model.py:20) → ... → z_I`: the whole chain, each step named."""
    steps = []
    for node in chain:
        if names.graph.node(node)["kind"] == "output":
            continue
        steps.append(names.label(node))
    return " → ".join(steps)
