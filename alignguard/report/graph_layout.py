"""Draw a graph View as SVG without graphviz: a layered (Sugiyama-style) layout done in Python.

Used when graphviz's `dot` is not installed, so `alignguard graph -o graph.html` always gives a
self-contained page: no script, no network, nothing a strict Content-Security-Policy blocks.
Layers are longest paths from the inputs (back edges of a cycle are set aside first); each layer
is ordered by the barycentre of its neighbours, a few sweeps down and up, with the nodes of one
component kept together so its dashed box encloses them.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

import networkx as nx

from alignguard.report.graph_view import View

ARROWS = {"plain": "#888888", "red": "red", "green": "#2e8b57"}
CHAR_W, LINE_H, PAD, GAP_X, GAP_Y, WRAP, SWEEPS = 6.6, 14, 8, 24, 46, 38, 4


@dataclass
class Box:
    x: float  # centre
    y: float  # top
    w: float
    h: float
    lines: list[str]


def layers_of(graph: nx.DiGraph) -> dict[str, int]:
    """Longest-path layer of every node, over the graph without the back edges of its cycles."""
    dag = nx.DiGraph(graph)
    while not nx.is_directed_acyclic_graph(dag):  # captured graphs are acyclic; a folded view may not be
        a, b = nx.find_cycle(dag)[-1][:2]
        dag.remove_edge(a, b)
    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        layer[node] = max((layer[p] + 1 for p in dag.predecessors(node)), default=0)
    return layer


def order_layers(graph: nx.DiGraph, layer: dict[str, int], cluster_of: dict[str, object]) -> list[list[str]]:
    """Rows of nodes per layer; `cluster_of` maps a node to the component group it is kept in."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in graph.nodes:  # capture order: a good first guess
        rows[layer[node]].append(node)
    position = {node: i for row in rows for i, node in enumerate(row)}

    def sweep(row: list[str], neighbours) -> list[str]:
        centre = {}
        for node in row:
            around = [position[n] for n in neighbours(node)]
            centre[node] = sum(around) / len(around) if around else position[node]
        group = {}  # a component's nodes stay together, at their mean barycentre
        for node in row:
            group.setdefault(cluster_of.get(node), []).append(centre[node])
        key = {c: (sum(v) / len(v) if c is not None else None) for c, v in group.items()}
        return sorted(row, key=lambda n: (key[cluster_of.get(n)] if cluster_of.get(n) is not None else centre[n],
                                          centre[n]))

    for _ in range(SWEEPS):
        for rows_in_order, neighbours in ((rows[1:], graph.predecessors), (rows[-2::-1], graph.successors)):
            for row in rows_in_order:
                row[:] = sweep(row, neighbours)
                position.update({node: i for i, node in enumerate(row)})
    return rows


def layout(view: View, label_of) -> tuple[dict[str, Box], float, float]:
    graph = view.graph
    if graph.number_of_nodes() == 0:
        return {}, 200.0, 40.0
    layer = layers_of(graph)
    inside = _nesting(view)
    outermost = {c: min((o for o in inside if c in inside[o]), key=lambda o: len(view.clusters[o])) for c in inside}
    rows = order_layers(graph, layer, {n: outermost.get(d["cluster"]) for n, d in graph.nodes(data=True)})
    boxes: dict[str, Box] = {}
    for node in graph.nodes:
        lines = [piece for part in label_of(graph.nodes[node]).split("\n")
                 for piece in (textwrap.wrap(part, WRAP) or [""])]
        boxes[node] = Box(0, 0, max(len(s) for s in lines) * CHAR_W + 2 * PAD, len(lines) * LINE_H + PAD, lines)
    widths = [sum(boxes[n].w for n in row) + GAP_X * (len(row) - 1) for row in rows]
    width = max(widths) + 2 * GAP_X
    y = 2 * GAP_X
    for row, row_width in zip(rows, widths):
        x = (width - row_width) / 2
        height = max(boxes[n].h for n in row)
        for node in row:
            box = boxes[node]
            box.x, box.y = x + box.w / 2, y + (height - box.h) / 2
            x += box.w + GAP_X
        y += height + GAP_Y
    return boxes, width, y


def _nesting(view: View) -> dict[str, set[str]]:
    """Each component and the components inside it (by module path)."""
    modules = view.clusters
    return {name: {other for other, path in modules.items()
                   if other == name or path.startswith(modules[name] + ".") or not modules[name]}
            for name in modules}


def _depth_below(name: str, inside: dict[str, set[str]]) -> int:
    inner = inside[name] - {name}
    return 1 + max((_depth_below(other, inside) for other in inner if inside[other] < inside[name]), default=0) \
        if inner else 0


def to_layout_svg(view: View, label_of, style) -> str:
    """SVG of `view`; `label_of(node data)` gives a node's text, `style(node data)` its fill, stroke,
    stroke width, text colour and shape (as graph_render decides for graphviz too)."""
    boxes, width, height = layout(view, label_of)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="alignguard-graph" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
           'font-size="11">',
           '<defs>' + "".join(
               f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
               f'markerUnits="userSpaceOnUse" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
               for name, colour in ARROWS.items()) + '</defs>']
    inside = _nesting(view)
    for index, (name, module) in enumerate(view.clusters.items()):
        members = [boxes[n] for n, d in view.graph.nodes(data=True) if d["cluster"] in inside[name]]
        if not members:
            continue
        levels = _depth_below(name, inside)  # an enclosing box is drawn wider, its label above the inner ones
        left = min(b.x - b.w / 2 for b in members) - PAD - 6 * levels
        right = max(b.x + b.w / 2 for b in members) + PAD + 6 * levels
        top = min(b.y for b in members) - PAD - LINE_H * (1 + levels)
        bottom = max(b.y + b.h for b in members) + PAD + 6 * levels
        label = html.escape(f"component {name} ({module})")
        out.append(f'<g class="cluster" id="c{index}"><rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
                   f'height="{bottom - top:.1f}" rx="6" fill="none" stroke="#1f5fbf" stroke-dasharray="5,3"/>'
                   f'<text x="{left + 4:.1f}" y="{top + LINE_H - 3:.1f}" fill="#1f5fbf">{label}</text></g>')
    for a, b in view.graph.edges:
        source, target = boxes[a], boxes[b]
        kind, stroke, rule = "plain", 1.0, ""
        if (a, b) in view.red:
            kind, stroke, rule = "red", 2.5, view.red[(a, b)]
        elif (a, b) in view.green:
            kind, stroke, rule = "green", 2.0, view.green[(a, b)]
        colour = ARROWS[kind]
        x1, y1, x2, y2 = source.x, source.y + source.h, target.x, target.y
        bend = max(GAP_Y / 2, (y2 - y1) / 3)
        if y2 <= y1:  # a back edge of a cycle: loop around the side
            bend = -bend
        title = f"<title>{html.escape(rule)}</title>" if rule else ""
        out.append(f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + bend:.1f}, {x2:.1f} {y2 - bend:.1f}, '
                   f'{x2:.1f} {y2:.1f}" fill="none" stroke="{colour}" stroke-width="{stroke}" '
                   f'marker-end="url(#arrow-{kind})">{title}</path>')
    for index, (node, data) in enumerate(view.graph.nodes(data=True)):
        box, look = boxes[node], style(data)
        left = box.x - box.w / 2
        shape = {"ellipse": f'<ellipse cx="{box.x:.1f}" cy="{box.y + box.h / 2:.1f}" rx="{box.w / 2:.1f}" '
                            f'ry="{box.h / 2:.1f}"',
                 "diamond": f'<polygon points="{box.x:.1f},{box.y - 4:.1f} {left + box.w + 6:.1f},'
                            f'{box.y + box.h / 2:.1f} {box.x:.1f},{box.y + box.h + 4:.1f} {left - 6:.1f},'
                            f'{box.y + box.h / 2:.1f}"'}.get(
            look["shape"], f'<rect x="{left:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="3"')
        tip = f"<title>{html.escape(look['tooltip'])}</title>" if look.get("tooltip") else ""
        weight = ' font-weight="bold"' if look.get("bold") else ""
        text = "".join(f'<tspan x="{box.x:.1f}" y="{box.y + PAD / 2 + LINE_H * (i + 1) - 3:.1f}">{html.escape(line)}'
                       f"</tspan>" for i, line in enumerate(box.lines))
        out.append(f'<g class="node" id="n{index}">{tip}{shape} fill="{look["fill"]}" stroke="{look["stroke"]}" '
                   f'stroke-width="{look["width"]}"/><text text-anchor="middle" fill="{look["color"]}"{weight}>'
                   f"{text}</text></g>")
    out.append("</svg>")
    return "\n".join(out)
