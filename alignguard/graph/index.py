"""An array view of the frozen graph, built once at capture, for the queries that touch every node.

networkx stays the graph of record; this index answers reachability and scope membership over
integer positions and numpy masks. A traversal over networkx's dicts of string ids costs more per
node as they outgrow the CPU caches (2.2x the time for twice the nodes at 1e5 nodes); one over
CSR arrays does not (benchmarks/graph_scaling.py). Large graphs are searched by
scipy.sparse.csgraph in C; small ones by a Python loop over the same arrays, because importing
scipy (0.13 s) costs more than every search of a small graph together.
"""

from __future__ import annotations

from itertools import repeat
from typing import Iterable

import networkx as nx
import numpy as np

SCIPY_FROM_NODES = 5_000


class GraphIndex:
    def __init__(self, graph: nx.DiGraph) -> None:
        self.names = np.array(list(graph), dtype=object)  # position -> node id, in graph (execution) order
        self.position = {name: i for i, name in enumerate(self.names)}
        size = len(self.names)
        heads = np.fromiter((self.position[u] for u, _ in graph.edges), dtype=np.int64, count=graph.number_of_edges())
        tails = np.fromiter((self.position[v] for _, v in graph.edges), dtype=np.int64, count=graph.number_of_edges())
        self._forward = _csr(heads, tails, size)
        self._backward = _csr(tails, heads, size)
        scopes: dict[str, list[int]] = {}
        # small integer codes, so that masks by kind or op compare ints rather than Python strings
        self.kind_codes: dict[str, int] = {}
        self.op_codes: dict[str, int] = {}
        self.kind = np.empty(size, dtype=np.int32)
        self.op = np.empty(size, dtype=np.int32)
        self.learned = np.zeros(size, dtype=bool)  # a param node or a module with trainable weights
        self.operand_pair = np.full((size, 2), -1, dtype=np.int64)  # the two node operands of a binary op
        for i, (_, data) in enumerate(graph.nodes(data=True)):
            for scope in data.get("scopes", ()):
                scopes.setdefault(scope, []).append(i)
            self.kind[i] = self.kind_codes.setdefault(data["kind"], len(self.kind_codes))
            self.op[i] = self.op_codes.setdefault(data.get("op"), len(self.op_codes))
            self.learned[i] = bool(data.get("learned"))
            refs = [operand.node for operand in data.get("operands", ()) if hasattr(operand, "node")]
            if len(refs) == 2:
                self.operand_pair[i] = self.position[refs[0]], self.position[refs[1]]
        self.scopes = {scope: np.array(members, dtype=np.int64) for scope, members in scopes.items()}

    def __len__(self) -> int:
        return len(self.names)

    def positions(self, nodes: Iterable[str]) -> np.ndarray:
        """Positions of the nodes that are in the graph (others are ignored)."""
        found = np.fromiter(map(self.position.get, nodes, repeat(-1)), dtype=np.int64)
        return found[found >= 0]

    def mask(self, positions: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        mask[positions] = True
        return mask

    def members(self, mask: np.ndarray) -> set[str]:
        return set(self.names[mask].tolist())

    def of_kind(self, kind: str, ops: Iterable[str] | None = None) -> np.ndarray:
        """Mask of the nodes of this kind (input, op, random, const ...), optionally with one of `ops`."""
        mask = self.kind == self.kind_codes.get(kind, -1)
        if ops is not None:
            mask &= np.isin(self.op, [self.op_codes[op] for op in ops if op in self.op_codes])
        return mask

    def reach(self, sources: np.ndarray, reverse: bool = False) -> np.ndarray:
        """Boolean mask of every node reachable from any source (sources included): one linear search."""
        order, _ = self._search(self._backward if reverse else self._forward, sources)
        return self.mask(order)

    def search(self, sources: np.ndarray, stop_at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Breadth-first search forward from all sources at once: (visit order, predecessor per node).

        Sources have the predecessor `len(self)`, unreached nodes a negative one. Nodes in the
        boolean mask `stop_at` are reached but not expanded.
        """
        indptr, indices = self._forward
        if stop_at is not None and stop_at.any():  # drop the stopping nodes' out-edges
            counts = np.diff(indptr)
            indices = indices[np.repeat(~stop_at, counts)]
            indptr = np.concatenate([[0], np.cumsum(np.where(stop_at, 0, counts))])
        return self._search((indptr, indices), sources)

    def _search(self, csr, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sources = np.unique(sources)
        if len(sources) == 0:
            return sources, np.full(len(self), -1, dtype=np.int64)
        if len(self) >= SCIPY_FROM_NODES:
            return _scipy_bfs(*csr, sources, len(self))
        return _python_bfs(*csr, sources, len(self))


def _csr(heads: np.ndarray, tails: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the adjacency: the successors of node i are indices[indptr[i]:indptr[i+1]]."""
    order = np.argsort(heads, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(heads, minlength=size))]).astype(np.int64)
    return indptr, tails[order].astype(np.int32)


def _python_bfs(indptr, indices, sources, size):
    indptr, indices = indptr.tolist(), indices.tolist()
    predecessors = [-1] * size
    queue = sources.tolist()
    for source in queue:
        predecessors[source] = size
    for node in queue:  # the queue grows while it is read: breadth-first order
        for successor in indices[indptr[node]:indptr[node + 1]]:
            if predecessors[successor] == -1:
                predecessors[successor] = node
                queue.append(successor)
    return np.array(queue, dtype=np.int64), np.array(predecessors, dtype=np.int64)


def _scipy_bfs(indptr, indices, sources, size):
    """The same search in C, from a virtual root (one extra CSR row) pointing at every source."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    indptr = np.append(indptr, indptr[-1] + len(sources))
    indices = np.concatenate([indices, sources.astype(indices.dtype)])
    with_root = csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(size + 1, size + 1))
    order, predecessors = breadth_first_order(with_root, size, directed=True, return_predecessors=True)
    return order[1:], predecessors[:-1]
