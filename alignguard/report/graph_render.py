"""Draw a graph View: DOT (pydot), Mermaid, SVG and HTML (that SVG inline, nothing else).

SVG is laid out by graphviz's `dot` when it is installed, else by `graph_layout` in Python, so
the HTML page never needs a script or the network to show the graph."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from alignguard.errors import UsageError
from alignguard.report.graph_view import View

SUFFIXES = (".dot", ".gv", ".svg", ".mmd", ".html")
LEGEND = ("purple outline: spec symbol · yellow: formula matched (pink: not matched) · orange: noise · "
          "dashed box: component · red: forbidden path or pattern present · green edge: required path")
FORMULA_FILL = {True: "#fff3a3", False: "#ffc9d2"}
_FILL = {"input": "#cfe8ff", "output": "#e0e0e0", "random": "#ffd59e", "param": "#f4f4f4",
         "const": "#f4f4f4", "group": "#eef2ff"}
_SHAPE = {"input": "ellipse", "output": "ellipse", "random": "diamond", "param": "note", "const": "note",
          "group": "box3d"}


def _ids(view: View) -> dict[str, str]:
    """Short, always-valid ids (graph node ids hold ':' and '.')."""
    return {node: f"n{i}" for i, node in enumerate(view.graph.nodes)}


def _text(data: dict) -> str:
    label = data["label"]
    if data["symbols"]:
        label = " = ".join(data["symbols"]) + " := " + label
    return label


def to_dot(view: View):
    try:
        import pydot
    except ImportError:
        raise UsageError("writing DOT or SVG needs the pydot package, which is not installed",
                         fix="pip install 'alignguard[graph]' (or pip install pydot), or write --output graph.mmd "
                         "or graph.svg / graph.html (laid out without graphviz) instead") from None

    ids = _ids(view)
    dot = pydot.Dot("alignguard", graph_type="digraph", rankdir="TB", fontname="Helvetica",
                    label=f"{view.title}\n{LEGEND}", labelloc="t", fontsize="11")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10", shape="box", style="filled", fillcolor="white")
    dot.set_edge_defaults(color="#888888", arrowsize="0.6")
    clusters = {}
    used = {data["cluster"] for _, data in view.graph.nodes(data=True)}
    for index, (name, module) in enumerate(view.clusters.items()):
        if name not in used:
            continue
        cluster = pydot.Cluster(f"c{index}", label=f"component {name} ({module})", style="dashed,rounded",
                                color="#1f5fbf", fontcolor="#1f5fbf")
        clusters[name] = cluster
        dot.add_subgraph(cluster)
    for node, data in view.graph.nodes(data=True):
        attrs = {"label": _text(data), "shape": _SHAPE.get(data["kind"], "box"),
                 "fillcolor": FORMULA_FILL[data["matched"]] if data["formula"] else _FILL.get(data["kind"], "white")}
        if data["symbols"]:
            attrs.update(color="#6a3d9a", penwidth="3", fontname="Helvetica-Bold")
        if data["forbidden"]:
            attrs.update(color="red", penwidth="3", fontcolor="red",
                         label=attrs["label"] + "\n(forbidden: " + ", ".join(data["forbidden"]) + ")")
        if data.get("file"):
            attrs["tooltip"] = f"{data['file']}:{data.get('line') or ''}"
        target = clusters.get(data["cluster"], dot)
        target.add_node(pydot.Node(ids[node], **attrs))
    for a, b in view.graph.edges:
        attrs = {}
        if (a, b) in view.red:
            attrs = {"color": "red", "penwidth": "2.5", "tooltip": view.red[(a, b)]}
        elif (a, b) in view.green:
            attrs = {"color": "#2e8b57", "penwidth": "2", "tooltip": view.green[(a, b)]}
        dot.add_edge(pydot.Edge(ids[a], ids[b], **attrs))
    return dot


def _mermaid_label(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(view: View) -> str:
    ids = _ids(view)
    shapes = {"input": ('(["', '"])'), "output": ('(["', '"])'), "random": ('{{"', '"}}'),
              "group": ('[["', '"]]')}
    lines = ["flowchart TB",
             "  classDef symbol stroke:#6a3d9a,stroke-width:3px",
             "  classDef formula fill:#fff3a3",
             "  classDef unmatched fill:#ffc9d2",
             "  classDef forbidden stroke:red,stroke-width:3px,color:red",
             "  classDef noise fill:#ffd59e",
             "  classDef io fill:#cfe8ff"]

    def node_line(node: str, data: dict) -> str:
        left, right = shapes.get(data["kind"], ('["', '"]'))
        return f"{ids[node]}{left}{_mermaid_label(_text(data))}{right}"

    for index, (name, module) in enumerate(view.clusters.items()):
        members = [(n, d) for n, d in view.graph.nodes(data=True) if d["cluster"] == name]
        if not members:
            continue
        lines.append(f'  subgraph c{index}["component {_mermaid_label(name)} ({_mermaid_label(module)})"]')
        lines += [f"    {node_line(n, d)}" for n, d in members]
        lines.append("  end")
    lines += [f"  {node_line(n, d)}" for n, d in view.graph.nodes(data=True) if d["cluster"] is None]
    styles = []
    for index, (a, b) in enumerate(view.graph.edges):
        lines.append(f"  {ids[a]} --> {ids[b]}")
        if (a, b) in view.red:
            styles.append(f"  linkStyle {index} stroke:red,stroke-width:3px")
        elif (a, b) in view.green:
            styles.append(f"  linkStyle {index} stroke:#2e8b57,stroke-width:2px")
    lines += styles
    for node, data in view.graph.nodes(data=True):
        formula = "formula" if data["matched"] else "unmatched"
        classes = [c for c, on in (("symbol", data["symbols"]), (formula, data["formula"]),
                                   ("forbidden", data["forbidden"]),
                                   ("noise", data["kind"] == "random"),
                                   ("io", data["kind"] in ("input", "output"))) if on]
        lines += [f"  class {ids[node]} {name}" for name in classes]
    return "\n".join(lines) + "\n"


def has_graphviz() -> bool:
    """graphviz's `dot` program and pydot are both there (SVG needs both)."""
    import importlib.util

    return shutil.which("dot") is not None and importlib.util.find_spec("pydot") is not None


def node_style(data: dict) -> dict:
    """Fill, outline, text colour, shape and tooltip of a node: the same for graphviz and the
    built-in layout."""
    look = {"fill": FORMULA_FILL[data["matched"]] if data["formula"] else _FILL.get(data["kind"], "white"),
            "stroke": "#555555", "width": 1, "color": "black", "shape": _SHAPE.get(data["kind"], "box"),
            "bold": False, "tooltip": f"{data['file']}:{data.get('line') or ''}" if data.get("file") else ""}
    if data["symbols"]:
        look.update(stroke="#6a3d9a", width=3, bold=True)
    if data["forbidden"]:
        look.update(stroke="red", width=3, color="red")
    return look


def _layout_label(data: dict) -> str:
    text = _text(data)
    return text + ("\n(forbidden: " + ", ".join(data["forbidden"]) + ")" if data["forbidden"] else "")


def to_svg(view: View) -> str:
    """graphviz's layout when `dot` is installed, else the built-in Python one."""
    if has_graphviz():
        return re.sub(r"^.*?(?=<svg)", "", to_dot(view).create_svg().decode("utf-8"), flags=re.S)  # no prolog
    from alignguard.report.graph_layout import to_layout_svg

    return to_layout_svg(view, _layout_label, node_style)


def to_html(view: View) -> str:
    """A self-contained page: the SVG inline, no script, nothing fetched when it is viewed."""
    title = html.escape(view.title)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in view.notes)
    notes_html = f"<h2>Not in the graph</h2><ul>{notes}</ul>" if notes else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><title>{title}</title>'
            f'<style>body{{font-family:sans-serif}} .graph svg{{max-width:100%;height:auto}}</style></head>'
            f'<body><h1>{title}</h1><p>{html.escape(LEGEND)}</p>{notes_html}<div class="graph">{to_svg(view)}</div>'
            f"</body></html>\n")


def write_graph(view: View, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"cannot draw a graph as '{path.name}'",
                         fix=f"use one of the extensions {', '.join(SUFFIXES)}")
    if suffix in (".dot", ".gv"):
        text = to_dot(view).to_string()
    elif suffix == ".svg":
        text = to_svg(view)
    elif suffix == ".mmd":
        text = to_mermaid(view)
    else:
        text = to_html(view)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write '{path}': {exc.strerror or exc}", fix="choose a writable --output path") \
            from None
