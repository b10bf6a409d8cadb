"""The questions the checks ask of a captured graph, answered through ModelGraph's public
functions only: for each forward output, which inputs reach it, whether a random draw reaches it,
which modules are on its path, which custom autograd.Functions it passes."""

from __future__ import annotations

from idioms import Expected

from alignguard.graph.model_graph import ModelGraph


def answers(graph: ModelGraph) -> dict[str, Expected]:
    result = {}
    modules = sorted(graph.called_modules())
    for key, node in graph.outputs.items():
        upstream = graph.reach_mask([node], reverse=True)
        nodes = graph.index.members(upstream)
        result[key] = Expected(
            inputs=frozenset(name for name, n in graph.inputs.items() if n in nodes),
            random=any(graph.node(n)["kind"] == "random" for n in nodes),
            modules=frozenset(p for p in modules if upstream[graph.module_nodes(p)].any()),
            functions=frozenset(graph.node(n)["target"] for n in nodes if graph.node(n)["op"] == "autograd_function"),
        )
    return result
