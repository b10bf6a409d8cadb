"""Draw a graph View as SVG without graphviz: a layered (Sugiyama-style) layout done in Python.

Used when graphviz's `dot` is not installed, so `alignguard graph -o graph.html` always gives a
self-contained page: no script, no network, nothing a strict Content-Security-Policy blocks.
Components are laid out as blocks: a component's nodes (and the components inside it) form a
small layered graph of their own, and the whole block is one item in its parent's layers, so the
dashed boxes never overlap each other or a node outside them. Within each block, layers are
longest paths from the inputs (back edges of a cycle are set aside first), each layer ordered by
the barycentre of its neighbours, a few sweeps down and up.
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


@dataclass
class Frame:
    """A component's dashed box: left, top, width, height, and its label."""

    x: float
    y: float
    w: float
    h: float
    label: str


FRAME_PAD, LABEL_H = 10, LINE_H + 6  # inside a component's box: margin, and the band its label sits in


class _Blocks:
    """Components laid out as blocks: each component's nodes (and the components inside it) are laid out
    as a small layered graph of their own; the whole block is then one item in its parent's layers. Items
    of a row sit side by side and rows stack, so no two boxes can overlap and no node can fall inside a
    box it does not belong to, whatever the graph."""

    def __init__(self, view: View, boxes: dict[str, Box]) -> None:
        self.view, self.boxes = view, boxes
        self.parent, self.owner = _component_tree(view)
        self.children: dict[str | None, list[str]] = {}
        for name, parent in self.parent.items():
            self.children.setdefault(parent, []).append(name)
        self.frames: dict[str, Frame] = {}
        self._sizes: dict = {}
        self._rows: dict = {}

    def chain(self, node: str) -> list[str]:
        """The components holding `node`, outermost first."""
        chain, component = [], self.owner.get(node)
        while component is not None:
            chain.append(component)
            component = self.parent[component]
        return chain[::-1]

    def item_of(self, node: str, scope: str | None):
        """What stands for `node` among `scope`'s items: the node itself, a child component, or None (outside)."""
        chain = self.chain(node)
        depth = 0 if scope is None else (chain.index(scope) + 1 if scope in chain else -1)
        if depth < 0:
            return None
        return ("component", chain[depth]) if depth < len(chain) else node

    def rows(self, scope: str | None) -> list[list]:
        if scope not in self._rows:
            self._rows[scope] = self._order(scope)
        return self._rows[scope]

    def _order(self, scope: str | None) -> list[list]:
        items = nx.DiGraph()
        for node in self.view.graph.nodes:  # capture order: the ordering's first guess
            item = self.item_of(node, scope)
            if item is not None:
                items.add_node(item)
        for a, b in self.view.graph.edges:
            ia, ib = self.item_of(a, scope), self.item_of(b, scope)
            if ia is not None and ib is not None and ia != ib:
                items.add_edge(ia, ib)
        return order_layers(items, layers_of(items), {})

    def size(self, item) -> tuple[float, float]:
        if not isinstance(item, tuple):
            return self.boxes[item].w, self.boxes[item].h
        if item not in self._sizes:
            name = item[1]
            inner_w, inner_h = self.extent(name)
            label_w = len(self.label(name)) * CHAR_W + 2 * PAD
            self._sizes[item] = (max(inner_w + 2 * FRAME_PAD, label_w), inner_h + LABEL_H + FRAME_PAD)
        return self._sizes[item]

    def label(self, name: str) -> str:
        return f"component {name} ({self.view.clusters[name]})"

    def extent(self, scope: str | None) -> tuple[float, float]:
        rows = self.rows(scope)
        widths = [sum(self.size(i)[0] for i in row) + GAP_X * (len(row) - 1) for row in rows]
        heights = [max(self.size(i)[1] for i in row) for row in rows]
        return max(widths, default=0.0), sum(heights) + GAP_Y * max(len(rows) - 1, 0)

    def place(self, scope: str | None, left: float, top: float) -> None:
        rows = self.rows(scope)
        width, _ = self.extent(scope)
        y = top
        for row in rows:
            row_width = sum(self.size(i)[0] for i in row) + GAP_X * (len(row) - 1)
            height = max(self.size(i)[1] for i in row)
            x = left + (width - row_width) / 2
            for item in row:
                w, h = self.size(item)
                item_top = y  # top-aligned: a block beside a tall one starts level with it, not halfway down
                if isinstance(item, tuple):
                    name = item[1]
                    self.frames[name] = Frame(x, item_top, w, h, self.label(name))
                    inner_w, _ = self.extent(name)
                    self.place(name, x + (w - inner_w) / 2, item_top + LABEL_H)
                else:
                    box = self.boxes[item]
                    box.x, box.y = x + w / 2, item_top
                x += w + GAP_X
            y += height + GAP_Y


def _component_tree(view: View) -> tuple[dict[str, str | None], dict[str, str]]:
    """(parent of each component that has nodes, the innermost component owning each node), by member
    sets: a component inside another (by module path) is its child; equal sets nest in listing order."""
    inside = _nesting(view)
    order = list(view.clusters)
    members = {name: frozenset(n for n, d in view.graph.nodes(data=True) if d["cluster"] in inside[name])
               for name in order}
    ranked = sorted((name for name in order if members[name]), key=lambda c: (-len(members[c]), order.index(c)))
    parent: dict[str, str | None] = {}
    for index, name in enumerate(ranked):
        holders = [other for other in ranked[:index] if members[name] <= members[other]]
        parent[name] = holders[-1] if holders else None  # the smallest (latest ranked) holder
    owner = {}
    for name in ranked:  # later ranked = smaller: the innermost holder wins
        for node in members[name]:
            owner[node] = name
    return parent, owner


def layout(view: View, label_of) -> tuple[dict[str, Box], float, float, dict[str, Frame]]:
    """Every node's box and every component's frame, and the drawing's width and height."""
    graph = view.graph
    if graph.number_of_nodes() == 0:
        return {}, 200.0, 40.0, {}
    boxes: dict[str, Box] = {}
    for node in graph.nodes:
        lines = [piece for part in label_of(graph.nodes[node]).split("\n")
                 for piece in (textwrap.wrap(part, WRAP) or [""])]
        boxes[node] = Box(0, 0, max(len(s) for s in lines) * CHAR_W + 2 * PAD, len(lines) * LINE_H + PAD, lines)
    blocks = _Blocks(view, boxes)
    width, height = blocks.extent(None)
    blocks.place(None, GAP_X, 2 * GAP_X)
    return boxes, width + 2 * GAP_X, height + 2 * GAP_X + GAP_Y, blocks.frames


def _nesting(view: View) -> dict[str, set[str]]:
    """Each component and the components inside it (by module path)."""
    modules = view.clusters
    return {name: {other for other, path in modules.items()
                   if other == name or path.startswith(modules[name] + ".") or not modules[name]}
            for name in modules}


def to_layout_svg(view: View, label_of, style) -> str:
    """SVG of `view`; `label_of(node data)` gives a node's text, `style(node data)` its fill, stroke,
    stroke width, text colour and shape (as graph_render decides for graphviz too)."""
    boxes, width, height, frames = layout(view, label_of)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="alignguard-graph" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
           'font-size="11">',
           '<defs>' + "".join(
               f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
               f'markerUnits="userSpaceOnUse" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
               for name, colour in ARROWS.items()) + '</defs>']
    for index, name in enumerate(view.clusters):
        frame = frames.get(name)
        if frame is None:  # a component with no node in the graph (the page's notes say so)
            continue
        out.append(f'<g class="cluster" id="c{index}"><rect x="{frame.x:.1f}" y="{frame.y:.1f}" '
                   f'width="{frame.w:.1f}" height="{frame.h:.1f}" rx="6" fill="none" stroke="#1f5fbf" '
                   f'stroke-dasharray="5,3"/><text x="{frame.x + 4:.1f}" y="{frame.y + LINE_H:.1f}" '
                   f'fill="#1f5fbf">{html.escape(frame.label)}</text></g>')
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
