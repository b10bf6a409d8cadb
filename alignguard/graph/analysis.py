"""Read-only analyses every structural check shares: naming nodes in the design's words,
rendering what a node computes, shortest chains through ordered waypoints, and which nodes
carry learned values. Everything here is one or a few linear passes over the graph; nothing
enumerates paths.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Mapping

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


def shortest_chain(graph: ModelGraph, sources: Iterable[str], waypoints: list[set[str]],
                   targets: set[str], limit: int = 1) -> list[list[str]]:
    """Shortest data-flow chains from any source through each waypoint set in order to a target.

    A breadth-first search over (node, waypoints passed) states: linear in graph size times
    the number of waypoints. Returns up to `limit` chains entering the targets at distinct
    nodes, shortest first. Expansion stops at targets, so each chain is a whole, minimal chain.
    """
    last = len(waypoints)
    successors = graph.graph._succ  # plain dicts: the read-only views cost a wrapper per lookup
    parent: dict[tuple[str, int], tuple[str, int] | None] = {}
    queue: deque[tuple[str, int]] = deque()

    def push(state: tuple[str, int], previous: tuple[str, int] | None, front: bool = False) -> None:
        if state in parent:
            return
        parent[state] = previous
        (queue.appendleft if front else queue.append)(state)

    for source in sources:
        if source in graph.graph:
            push((source, 0), None)
    found: list[list[str]] = []
    while queue and len(found) < limit:
        node, stage = queue.popleft()
        if stage < last and node in waypoints[stage]:
            push((node, stage + 1), (node, stage), front=True)  # passing a waypoint costs nothing
        if stage == last and node in targets:
            found.append(_unwind(parent, (node, stage)))
            continue
        for successor in successors[node]:
            push((successor, stage), (node, stage))
    return found


def _unwind(parent: dict, state: tuple[str, int]) -> list[str]:
    chain: list[str] = []
    current: tuple[str, int] | None = state
    while current is not None:
        if not chain or chain[-1] != current[0]:
            chain.append(current[0])
        current = parent[current]
    return chain[::-1]


def learned_nodes(graph: ModelGraph) -> set[str]:
    """Nodes whose value depends on a trainable parameter (a param node or a module with weights)."""
    seeds = [n for n, d in graph.graph.nodes(data=True) if d.get("learned")]
    return graph.reachable(seeds)


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
