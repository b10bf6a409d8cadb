"""The array index answers reachability like networkx, on both of its search paths."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from alignguard.graph import index as index_module
from alignguard.graph.index import GraphIndex


def random_dag(seed: int, size: int = 60) -> nx.DiGraph:
    rng = np.random.default_rng(seed)
    graph = nx.DiGraph()
    for i in range(size):
        graph.add_node(f"n{i}", kind="op", op="add" if i % 2 else "mul", scopes=("m",) if i < size // 2 else ())
    for _ in range(size * 2):
        a, b = sorted(rng.choice(size, 2, replace=False))
        graph.add_edge(f"n{a}", f"n{b}")
    return graph


@pytest.fixture(params=["python", "scipy"])
def search_path(request, monkeypatch):
    monkeypatch.setattr(index_module, "SCIPY_FROM_NODES", 10**9 if request.param == "python" else 0)
    return request.param


@pytest.mark.parametrize("seed", range(5))
def test_reach_matches_networkx_forward_and_backward(search_path, seed):
    graph = random_dag(seed)
    index = GraphIndex(graph)
    sources = ["n3", "n17"]
    expected = set(sources).union(*(nx.descendants(graph, s) for s in sources))
    assert index.members(index.reach(index.positions(sources))) == expected
    upstream = {"n40"} | nx.ancestors(graph, "n40")
    assert index.members(index.reach(index.positions(["n40"]), reverse=True)) == upstream


def test_search_gives_shortest_predecessors_and_stops_where_told(search_path):
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "e")])
    nx.set_node_attributes(graph, "op", "kind")
    index = GraphIndex(graph)
    a, c, d, e = (index.position[n] for n in "acde")
    order, predecessors = index.search(index.positions(["a"]))
    assert order[0] == a and predecessors[a] == len(index) and predecessors[c] == a  # a -> c, not a -> b -> c
    order, predecessors = index.search(index.positions(["a"]), stop_at=index.mask(np.array([d])))
    assert d in order and e not in order and predecessors[e] < 0


def test_empty_sources_reach_nothing(search_path):
    index = GraphIndex(random_dag(0))
    assert not index.reach(index.positions(["not a node"])).any()


def test_scopes_kinds_and_ops_are_indexed():
    index = GraphIndex(random_dag(1))
    assert len(index.scopes["m"]) == 30
    assert index.of_kind("op", ["add"]).sum() == 30 and not index.of_kind("random").any()
