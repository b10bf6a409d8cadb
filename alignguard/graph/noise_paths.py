"""Where a graph's randomness goes: for each random source, does it reach a symbol, and does it
pass a product with a learned scale on the way (`z = mu + sigma * eps`, the reparameterisation)?

One reachability pass per random source plus two shared passes (the symbol's ancestors, the
learned nodes): linear in graph size for the handful of random sources a model has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignguard.graph.analysis import learned_mask, operand_refs
from alignguard.graph.model_graph import ModelGraph
from alignguard.graph.vocabulary import NOISE_OPS

_PRODUCTS = ("mul", "addcmul")  # addcmul(a, t1, t2) = a + t1 * t2


@dataclass(frozen=True)
class NoisePath:
    source: str  # the random node
    reaches: bool  # its output reaches the symbol
    scale: str | None  # the product node where a learned scale multiplies it on the way, if any


def noise_sources(graph: ModelGraph) -> list[str]:
    """Random *noise* draws (randn, normal, rand, ...; not dropout masks), in graph order."""
    index = graph.index
    return index.names[index.of_kind("random", NOISE_OPS)].tolist()


def trace_noise(graph: ModelGraph, sources: list[str], target: str) -> list[NoisePath]:
    index = graph.index
    upstream = graph.reach_mask([target], reverse=True)
    learned = learned_mask(graph)
    products = index.of_kind("op", _PRODUCTS)
    paths = []
    for source in sources:
        downstream = graph.reach_mask([source])
        reaches = bool(downstream[index.position[target]])
        scale = None
        if reaches:
            for node in np.flatnonzero(downstream & upstream & products):  # in graph order
                if _scales(graph, index.names[node], downstream, learned):
                    scale = index.names[node]
                    break
        paths.append(NoisePath(source, reaches, scale))
    return paths


def _scales(graph: ModelGraph, node: str, noisy, learned) -> bool:
    """`node` multiplies a noisy operand by a learned, noise-free one (masks over graph.index)."""
    refs = [graph.index.position[r] for r in operand_refs(graph, node)]
    factors = refs[1:] if graph.node(node)["op"] == "addcmul" else refs
    noisy_factors = [f for f in factors if noisy[f]]
    clean_factors = [f for f in factors if not noisy[f]]
    return bool(noisy_factors) and any(learned[f] for f in clean_factors)


def _constants_upstream(graph: ModelGraph, target: str) -> list[str]:
    index = graph.index
    return index.names[graph.reach_mask([target], reverse=True) & index.of_kind("const")].tolist()


def fixed_tensors(graph: ModelGraph, target: str) -> list[str]:
    """Non-parameter tensor attributes (not buffers) that feed the target: a 'noise' fixed at build time."""
    return [n for n in _constants_upstream(graph, target)
            if not graph.node(n).get("baked") and not graph.node(n).get("buffer")]
