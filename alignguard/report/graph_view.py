"""The captured graph annotated with the spec, ready to draw (`alignguard graph`).

Each node keeps its kind and a short label; the spec's symbols are attached to the nodes they
resolve to, components become clusters (a node belongs to the deepest component whose module
contains it), each formula marks the computation between its operands and its result (as
matched or not, by the formula check's verdict). What the flow and pattern checks found is
drawn from their results (which `api.graph_view` runs; this module only renders): a forbidden path the graph has and a forbidden
pattern's node in red, a required path in green. `collapse(view, depth)` folds modules deeper
than `depth` into one node each, for models too large to read node by node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from alignguard.checks.structure.symbols import resolve_binding
from alignguard.graph.model_graph import ModelGraph
from alignguard.results import CheckResult, Status
from alignguard.spec.formula import symbols_in
from alignguard.spec.model import Spec


@dataclass
class View:
    # node attrs: kind, label, module, cluster, symbols, formula (indices), matched (formula check passed),
    # forbidden (the forbidden patterns found at this node), file, line
    graph: nx.DiGraph
    clusters: dict[str, str]  # component name -> its module path
    red: dict[tuple[str, str], str] = field(default_factory=dict)  # edge -> forbidden rule
    green: dict[tuple[str, str], str] = field(default_factory=dict)  # edge -> required rule
    title: str = ""
    notes: list[str] = field(default_factory=list)  # what the spec names but the graph lacks


def node_module(data: dict) -> str:
    """The module a node belongs to: the module it calls, else its scope ('' at top level)."""
    if data.get("fx_op") == "call_module" or data.get("kind") == "module":
        return str(data.get("target") or data.get("scope") or "")
    return str(data.get("scope") or "")


def node_label(node_id: str, data: dict) -> str:
    kind = data.get("kind")
    if kind == "input":
        return f"input {data.get('target') or node_id}"
    if kind == "output":
        return f"output {data.get('key', node_id)}"
    if kind in ("param", "const"):
        return f"{kind} {data.get('target') or node_id}"
    if kind == "module":
        return f"{data.get('target')}: {data.get('op')}"
    if kind == "random":
        return f"{data.get('op')} (noise)"
    return str(data.get("op") or node_id)


def build_view(spec: Spec, model_graph: ModelGraph, results: list[CheckResult],
               shapes: dict | None = None) -> View:
    """The view of the captured graph, marked with what the flow, formula and pattern checks found
    (`results`: theirs, in the order they ran)."""
    g = nx.DiGraph()
    for node_id, data in model_graph.graph.nodes(data=True):
        g.add_node(node_id, kind=data.get("kind", "op"), label=node_label(node_id, data),
                   module=node_module(data), cluster=None, symbols=[], formula=[], matched=True, forbidden=[],
                   file=data.get("file"), line=data.get("line"))
    g.add_edges_from(model_graph.graph.edges)
    view = View(g, {name: c.module for name, c in spec.components.items()},
                title=f"{spec.name}: {model_graph.capture}")
    places = _symbol_nodes(spec, model_graph, view, shapes or {})
    _assign_clusters(view)
    of = lambda prefix: [r for r in results if r.check_id.split(".")[0] == prefix]  # noqa: E731
    for index, (formula, result) in enumerate(zip(spec.formulas, of("formula"))):
        _mark_formula(view, model_graph, index, formula.parsed, places, result)
    for result in of("flow"):
        _mark_flow(view, result)
    for result in of("pattern"):
        for node in result.details.get("nodes", []) if result.status is Status.FAIL else []:
            view.graph.nodes[node]["forbidden"].append(result.element)
    return view


def _symbol_nodes(spec: Spec, model_graph: ModelGraph, view: View, shapes: dict) -> dict[str, str]:
    """`shapes`: the real shapes of slice-bound symbols' tensors, so a slice finds a chunk of the same elements."""
    places = {}
    for name, binding in spec.symbols.items():
        resolution = resolve_binding(model_graph, binding, shapes.get(name))
        if resolution.node is None or resolution.node not in view.graph:
            view.notes.append(f"symbol {name} is not in the graph ({resolution.found})")
            continue
        places[name] = resolution.node
        view.graph.nodes[resolution.node]["symbols"].append(name)
    return places


def _assign_clusters(view: View) -> None:
    # deepest component first, so `heads.modulator` wins over `heads` for its own nodes
    by_depth = sorted(view.clusters.items(), key=lambda item: -item[1].count("."))
    for node_id, data in view.graph.nodes(data=True):
        module = data["module"]
        for name, path in by_depth:
            if module == path or module.startswith(path + "."):
                data["cluster"] = name
                break
    for name, path in view.clusters.items():
        if not any(d["cluster"] == name for _, d in view.graph.nodes(data=True)):
            view.notes.append(f"component {name} ({path}) has no node in the graph")


def _mark_formula(view: View, model_graph: ModelGraph, index: int, equation, places: dict[str, str],
                  result: CheckResult) -> None:
    """The formula's region (its result, its operands and every node between them), marked as
    matched or not according to the formula check."""
    missing = sorted(s for s in {equation.lhs} | symbols_in(equation.rhs) if s not in places)
    if missing:
        view.notes.append(f"formula {index} ({equation.text}) is not highlighted: "
                          f"{', '.join(missing)} not in the graph")
        return
    if result.status is not Status.PASS:
        view.notes.append(f"formula {equation.text} does not match: {result.found}")
    result_node, operands = places[equation.lhs], [places[s] for s in sorted(symbols_in(equation.rhs))]
    upstream = model_graph.reachable([result_node], reverse=True)
    region = {result_node} | set(operands) | (model_graph.reachable(operands) & upstream)
    for node_id in region:
        data = view.graph.nodes[node_id]
        data["formula"].append(index)
        data["matched"] = data["matched"] and result.status is Status.PASS


def _mark_flow(view: View, result: CheckResult) -> None:
    """A forbidden path the graph has, in red; a required path it has, in green."""
    if result.check_id == "flow.forbidden" and result.status is Status.FAIL:
        chains, marks = result.details.get("chains", []), view.red
    elif result.check_id == "flow.required" and result.status is Status.PASS:
        chains, marks = [result.details.get("chain", [])], view.green
    else:
        if result.check_id == "flow.required":
            view.notes.append(f"{result.element}: {result.found}")
        return
    for chain in chains:
        for edge in zip(chain, chain[1:]):
            if view.graph.has_edge(*edge):
                marks[edge] = f"{result.check_id}: {result.element.removeprefix('flow ')}"


def collapse(view: View, depth: int) -> View:
    """Fold every module nested `depth` levels or deeper into one node named by its path."""
    group_of: dict[str, str] = {}
    for node_id, data in view.graph.nodes(data=True):
        parts = data["module"].split(".") if data["module"] else []
        if data["kind"] not in ("input", "output") and len(parts) >= depth:
            group_of[node_id] = "module:" + ".".join(parts[:depth])
        else:
            group_of[node_id] = node_id
    g = nx.DiGraph()
    members: dict[str, list[str]] = {}
    for node_id, group in group_of.items():
        members.setdefault(group, []).append(node_id)
    for group, nodes in members.items():
        if group in view.graph and len(nodes) == 1 and group == nodes[0]:
            g.add_node(group, **view.graph.nodes[group])
            continue
        datas = [view.graph.nodes[n] for n in nodes]
        module = group.removeprefix("module:")
        g.add_node(group, kind="group", label=f"{module} ({len(nodes)} nodes)", module=module,
                   cluster=_common([d["cluster"] for d in datas]),
                   symbols=sorted({s for d in datas for s in d["symbols"]}),
                   formula=sorted({f for d in datas for f in d["formula"]}),
                   matched=all(d["matched"] for d in datas),
                   forbidden=sorted({p for d in datas for p in d["forbidden"]}), file=None, line=None)
    for a, b in view.graph.edges:
        if group_of[a] != group_of[b]:
            g.add_edge(group_of[a], group_of[b])

    def fold(marks: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
        return {(group_of[a], group_of[b]): text for (a, b), text in marks.items() if group_of[a] != group_of[b]}

    return View(g, view.clusters, fold(view.red), fold(view.green), view.title + f" (depth {depth})", view.notes)


def _common(values: list[str | None]) -> str | None:
    return values[0] if values and all(v == values[0] for v in values) else None
