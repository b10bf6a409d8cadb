"""The captured forward graph, as a frozen networkx DiGraph every check reads.

Nodes are typed (input, module, op, random, const, param, output). Each node carries its
normalised op name, its module scope (innermost module path) and the chain of enclosing scopes,
its source location, and its ordered `operands` (a `Ref` to another node, a Python number, or
None for anything else), so formulas with `-` and `/` can be matched in the right order. Edges
follow data flow only: arguments read for their shape (`randn_like(std)`, `x.size(0)`) add none.
Shape-only ops are kept as nodes but flagged `transparent`, so pattern matching can skip them.

Every capture (torch.fx, the eager recorder) produces this same form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import networkx as nx
import numpy as np

from alignguard.graph.index import GraphIndex

# Ops whose output holds the input's elements at the same indices (a part's slice still applies).
LAYOUT_KEEPING_OPS = frozenset({"to", "float", "double", "half", "bfloat16", "type", "type_as", "contiguous",
                                "clone", "alias", "identity", "detach", "detach_copy", "cpu", "cuda"})


@dataclass(frozen=True)
class Ref:
    """An operand that is another graph node."""

    node: str

    def __repr__(self) -> str:
        return f"Ref({self.node})"


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
    capture_note: str = ""  # why a fallback was used, what the capture could not see
    training: bool = True  # the mode the model was in while captured
    index: GraphIndex = field(init=False, repr=False, compare=False)  # arrays for whole-graph queries

    def __post_init__(self) -> None:
        self.index = GraphIndex(self.graph)

    # ---- nodes -------------------------------------------------------------------------
    def node(self, node_id: str) -> dict:
        return self.graph.nodes[node_id]

    def nodes_of_kind(self, *kinds: str) -> Iterator[str]:
        return (n for n, data in self.graph.nodes(data=True) if data["kind"] in kinds)

    def nodes_in_scope(self, module_path: str) -> list[str]:
        """Nodes computed inside `module_path` or any of its submodules, in graph order."""
        members = self.index.scopes.get(module_path)
        return [] if members is None else self.index.names[members].tolist()

    def module_nodes(self, module_path: str):
        """Positions (in `index`) of the nodes computed inside the module plus what its calls returned."""
        returned = self.index.positions(n for call in self.module_outputs(module_path) for n in call.outputs if n)
        inside = self.index.scopes.get(module_path, returned[:0])
        if not len(inside) and not len(returned) and module_path:
            # a container (ModuleList/ModuleDict) is never called itself: it stands for its children
            prefix = module_path + "."
            children = [path for path in self.index.scopes if path.startswith(prefix)]
            returned = self.index.positions(n for call in self.module_calls if call.path.startswith(prefix)
                                            for n in call.outputs if n)
            inside = np.concatenate([self.index.scopes[path] for path in children] or [returned[:0]])
        return np.concatenate([inside, returned])  # a repeated position is harmless in a mask lookup

    def called_modules(self) -> set[str]:
        return {call.path for call in self.module_calls} | set(self.index.scopes)

    def module_outputs(self, module_path: str) -> list[ModuleCall]:
        return [call for call in self.module_calls if call.path == module_path]

    def operands(self, node_id: str) -> tuple[Any, ...]:
        """Ordered operands: `Ref` for a node, a number for a scalar literal, None otherwise."""
        return self.node(node_id).get("operands", ())

    def operand_nodes(self, node_id: str) -> list[str]:
        return [o.node for o in self.operands(node_id) if isinstance(o, Ref)]

    def skip_transparent(self, node_id: str) -> str:
        """Follow shape-only ops back to the node that computed the values."""
        seen = set()
        while node_id not in seen:
            seen.add(node_id)
            data = self.node(node_id)
            refs = [o for o in data.get("operands", ()) if isinstance(o, Ref)]
            if not data.get("transparent") or not refs:
                return node_id
            node_id = refs[0].node
        return node_id

    def part_readers(self, input_name: str, selection, shape) -> list[str]:
        """The nodes that read a part (`selection`) of forward argument `input_name` of `shape`.

        From the input, through ops that keep its element layout (casts, contiguous, clone), every
        consumer reads the part unless it is a selection (`c[:, :8]`, `narrow`, `select`) whose
        elements are disjoint from the part's. A consumer that reshapes or mixes the input reads it all.
        """
        from alignguard.spec.selection import overlaps

        return [node for node, read in self.input_readers(input_name)
                if read is None or overlaps(read, selection, shape)]

    def input_readers(self, input_name: str) -> list[tuple[str, object]]:
        """Every node that reads forward argument `input_name` (through layout-keeping ops), with the
        selection it reads (`c[:, :-1]`), or None for a node that reads the input whole."""
        start = self.inputs.get(input_name)
        if start is None:
            return []
        readers, frontier, seen = [], [start], {start}
        while frontier:
            node = frontier.pop()
            for consumer in self.graph.successors(node):
                if consumer in seen:
                    continue
                seen.add(consumer)
                data = self.node(consumer)
                if data.get("op") in LAYOUT_KEEPING_OPS:
                    frontier.append(consumer)
                else:
                    readers.append((consumer, data.get("selection")))
        return readers

    # ---- paths ---------------------------------------------------------------------------
    def reaches(self, source: str, target: str) -> bool:
        return source == target or nx.has_path(self.graph, source, target)

    def descendants(self, node_id: str) -> set[str]:
        return nx.descendants(self.graph, node_id)

    def ancestors(self, node_id: str) -> set[str]:
        return nx.ancestors(self.graph, node_id)

    def reachable(self, sources: Iterable[str], reverse: bool = False) -> set[str]:
        """Every node reachable from any source (sources included): one linear BFS."""
        return self.index.members(self.reach_mask(sources, reverse))

    def reach_mask(self, sources: Iterable[str], reverse: bool = False):
        """`reachable` as a boolean numpy mask over `index.names`, for queries over many nodes."""
        return self.index.reach(self.index.positions(sources), reverse)

    def shortest_path(self, source: str, target: str) -> list[str] | None:
        try:
            return nx.shortest_path(self.graph, source, target)
        except nx.NetworkXNoPath:
            return None

    # ---- describing nodes ---------------------------------------------------------------
    def location(self, node_id: str) -> tuple[str | None, int | None]:
        data = self.node(node_id)
        return data.get("file"), data.get("line")

    def where_text(self, node_id: str) -> str:
        file, line = self.location(node_id)
        return f"{file}:{line}" if file and line else (file or "")

    def label(self, node_id: str) -> str:
        data = self.node(node_id)
        scope = f" in {data['scope']}" if data.get("scope") else ""
        return f"{data.get('op') or data['kind']}[{node_id}]{scope}"

    def __len__(self) -> int:
        return self.graph.number_of_nodes()


def freeze(graph: nx.DiGraph) -> nx.DiGraph:
    """Checks share one graph; freezing makes an accidental mutation fail loudly."""
    return nx.freeze(graph)
