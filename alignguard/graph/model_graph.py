"""The captured forward graph, as a frozen networkx DiGraph every check reads.

Nodes are typed (input, module, op, random, const, param, output). Each node carries its
normalised op name, its module scope (innermost first-class module path) and its source
location, so a finding can say *where*. Edges follow data flow. Shape-only ops are kept as
nodes but flagged `transparent`, so pattern matching can skip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import networkx as nx

NODE_KINDS = ("input", "module", "op", "random", "const", "param", "output")


@dataclass(frozen=True)
class ModuleCall:
    """One call of a module during capture: the graph nodes it returned (one per tuple element)."""

    path: str
    outputs: tuple[str | None, ...]


@dataclass
class ModelGraph:
    graph: nx.DiGraph
    inputs: dict[str, str]  # forward argument name -> node id
    outputs: dict[str, str]  # output key (dict key, tuple index as str, or "output") -> node id
    module_calls: list[ModuleCall] = field(default_factory=list)
    capture: str = "torch.fx"  # which capture produced the graph
    capture_note: str = ""  # why a fallback was used, if one was

    # ---- nodes -------------------------------------------------------------------------
    def node(self, node_id: str) -> dict:
        return self.graph.nodes[node_id]

    def nodes_of_kind(self, *kinds: str) -> Iterator[str]:
        return (n for n, data in self.graph.nodes(data=True) if data["kind"] in kinds)

    def nodes_in_scope(self, module_path: str) -> list[str]:
        """Nodes computed inside `module_path` or any of its submodules."""
        return [n for n, data in self.graph.nodes(data=True) if module_path in data.get("scopes", ())]

    def called_modules(self) -> set[str]:
        called = {call.path for call in self.module_calls}
        for _, data in self.graph.nodes(data=True):
            called.update(data.get("scopes", ()))
        return called

    def module_outputs(self, module_path: str) -> list[ModuleCall]:
        return [call for call in self.module_calls if call.path == module_path]

    # ---- paths ---------------------------------------------------------------------------
    def reaches(self, source: str, target: str) -> bool:
        return source == target or nx.has_path(self.graph, source, target)

    def reaches_any(self, sources: Iterable[str], targets: Iterable[str]) -> bool:
        targets = set(targets)
        for source in sources:
            if source in targets or targets & self.descendants(source):
                return True
        return False

    def descendants(self, node_id: str) -> set[str]:
        return nx.descendants(self.graph, node_id)

    def ancestors(self, node_id: str) -> set[str]:
        return nx.ancestors(self.graph, node_id)

    def shortest_path(self, source: str, target: str) -> list[str] | None:
        try:
            return nx.shortest_path(self.graph, source, target)
        except nx.NetworkXNoPath:
            return None

    # ---- describing nodes ---------------------------------------------------------------
    def location(self, node_id: str) -> tuple[str | None, int | None]:
        data = self.node(node_id)
        return data.get("file"), data.get("line")

    def label(self, node_id: str) -> str:
        data = self.node(node_id)
        scope = f" in {data['scope']}" if data.get("scope") else ""
        return f"{data.get('op') or data['kind']}[{node_id}]{scope}"

    def __len__(self) -> int:
        return self.graph.number_of_nodes()


def freeze(graph: nx.DiGraph) -> nx.DiGraph:
    """Checks share one graph; freezing makes an accidental mutation fail loudly."""
    return nx.freeze(graph)
