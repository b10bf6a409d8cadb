"""Where a graph's randomness goes: for each random source, does it reach a symbol, and does it
pass a product with a learned scale on the way (`z = mu + sigma * eps`, the reparameterisation)?

One reachability pass per random source plus two shared passes (the symbol's ancestors, the
learned nodes): linear in graph size for the handful of random sources a model has.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignguard.graph.analysis import learned_nodes, operand_refs
from alignguard.graph.model_graph import ModelGraph
from alignguard.graph.vocabulary import NOISE_OPS

_PRODUCTS = ("mul", "addcmul")  # addcmul(a, t1, t2) = a + t1 * t2


@dataclass(frozen=True)
class NoisePath:
    source: str  # the random node
    reaches: bool  # its output reaches the symbol
    scale: str | None  # the product node where a learned scale multiplies it on the way, if any


def noise_sources(graph: ModelGraph, nodes: set[str] | None = None) -> list[str]:
    """Random *noise* draws (randn, normal, rand, ...; not dropout masks), optionally within `nodes`."""
    return [n for n, d in graph.graph.nodes(data=True)
            if d["kind"] == "random" and d["op"] in NOISE_OPS and (nodes is None or n in nodes)]


def trace_noise(graph: ModelGraph, sources: list[str], target: str) -> list[NoisePath]:
    upstream = graph.reachable([target], reverse=True)
    learned = learned_nodes(graph)
    order = {n: i for i, n in enumerate(graph.graph)}
    paths = []
    for source in sources:
        downstream = graph.reachable([source])
        reaches = target in downstream
        scale = None
        if reaches:
            for node in sorted(downstream & upstream, key=order.__getitem__):
                if _scales(graph, node, downstream, learned):
                    scale = node
                    break
        paths.append(NoisePath(source, reaches, scale))
    return paths


def _scales(graph: ModelGraph, node: str, noisy: set[str], learned: set[str]) -> bool:
    """`node` multiplies a noisy operand by a learned, noise-free one."""
    data = graph.node(node)
    if data["op"] not in _PRODUCTS:
        return False
    refs = operand_refs(graph, node)
    factors = refs[1:] if data["op"] == "addcmul" else refs
    noisy_factors = [f for f in factors if f in noisy]
    clean_factors = [f for f in factors if f not in noisy]
    return bool(noisy_factors) and any(f in learned for f in clean_factors)


def baked_constants(graph: ModelGraph, target: str) -> list[str]:
    """Tensors fx executed once at trace time (e.g. `torch.randn(4, 16)`) that feed the target."""
    upstream = graph.reachable([target], reverse=True)
    return [n for n in upstream if graph.node(n)["kind"] == "const" and graph.node(n).get("baked")]


def fixed_tensors(graph: ModelGraph, target: str) -> list[str]:
    """Non-parameter tensor attributes (not buffers) that feed the target: a 'noise' fixed at build time."""
    upstream = graph.reachable([target], reverse=True)
    return [n for n in upstream if graph.node(n)["kind"] == "const"
            and not graph.node(n).get("baked") and not graph.node(n).get("buffer")]
