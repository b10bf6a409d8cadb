"""`alignguard graph`: each output parses, symbols/components/formula are highlighted, the
forbidden path c -> z is red, --depth folds modules, and .svg without graphviz is a clear error."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

pydot = pytest.importorskip("pydot")  # the `graph` extra; reading .dot back needs it

from alignguard.report import graph_render
from tests.reports.conftest import HERE

SPEC = """
version: 1
name: leaky
inputs:
  x: {role: invariant}
  c: {role: context}
symbols:
  z: z
  U: U
  M: M
  B: B
  logit: logit
components:
  encoder: {module: encoder, reaches: [z]}
  heads: {module: heads}
  scale: {module: heads.scale, reaches: [M]}
flow:
  forbidden:
    - {from: c, to: z}
  required:
    - {from: x, via: [z], to: logit}
formulas:
  - equation: logit = M * U + B
forbidden_patterns:
  - {name: additive_leak, left: x, right: c, on_path_to: logit}
"""


@pytest.fixture
def leaky(write, workspace):
    shutil.copy(HERE / "models" / "leaky.py", workspace / "leaky.py")
    return write("leaky.yaml", SPEC)


def dot_graph(path):
    (graph,) = pydot.graph_from_dot_file(str(path))
    nodes = {n.get_name(): n for sub in [graph, *graph.get_subgraphs()] for n in sub.get_nodes()}
    labels = {name: (node.get_label() or "").strip('"') for name, node in nodes.items()}
    return graph, nodes, labels


def test_dot_output_highlights_the_spec(cli, leaky, workspace):
    result = cli("graph", leaky, "leaky.py", "--output", "g.dot")
    assert result.exit_code == 0, result.output
    # c -> context.linear -> add (= z); the add mixes a pure-x and a pure-c term
    assert "2 forbidden-path edges and 1 forbidden-pattern nodes in red" in result.stdout
    graph, nodes, labels = dot_graph(workspace / "g.dot")
    by_label = {label.split(" := ")[0]: name for name, label in labels.items() if " := " in label}
    assert set(by_label) == {"z", "U", "M", "B", "logit"}
    assert all(nodes[n].get("penwidth") in ("3", '"3"') for n in by_label.values())
    clusters = {s.get_label().strip('"'): s for s in graph.get_subgraphs()}
    assert set(clusters) == {"component encoder (encoder)", "component heads (heads)",
                             "component scale (heads.scale)"}
    # the nested component owns its nodes; its parent keeps the rest
    scale_nodes = [labels[n.get_name()] for n in clusters["component scale (heads.scale)"].get_nodes()]
    assert any("heads.scale.1" in label for label in scale_nodes)
    # M is the squeeze in Heads.forward: its scope is `heads`, outside the nested `heads.scale`
    assert by_label["M"] in {n.get_name() for n in clusters["component heads (heads)"].get_nodes()}
    # the formula region runs from M, U, B to logit and is filled yellow
    formula = {n for n, node in nodes.items() if (node.get("fillcolor") or "").strip('"') == graph_render.FORMULA_FILL[True]}
    assert {by_label[s] for s in ("M", "U", "B", "logit")} <= formula
    red = {e.get_source(): e.get_destination() for e in graph.get_edges() if e.get("color") == "red"}
    node = next(n for n, label in labels.items() if label == "input c")
    for _ in range(len(red)):
        node = red[node]
    assert node == by_label["z"]  # the red edges chain from input c to z
    assert "(forbidden: pattern additive_leak)" in labels[by_label["z"]]
    assert nodes[by_label["z"]].get("color") == "red"
    green = [e for e in graph.get_edges() if e.get("color") in ('"#2e8b57"', "#2e8b57")]
    assert green and green[-1].get_destination() == by_label["logit"]


def test_a_formula_that_does_not_match_is_marked_and_explained(cli, leaky, workspace):
    leaky.write_text(leaky.read_text().replace("logit = M * U + B", "logit = M * U - B"))
    result = cli("graph", leaky, "leaky.py", "-o", "g.dot")
    assert "note: formula logit = M * U - B does not match" in result.stdout
    _, nodes, labels = dot_graph(workspace / "g.dot")
    logit = next(n for n, label in labels.items() if label.startswith("logit := "))
    assert nodes[logit].get("fillcolor").strip('"') == graph_render.FORMULA_FILL[False]


def test_depth_folds_modules(cli, leaky, workspace):
    assert cli("graph", leaky, "leaky.py", "-o", "full.dot").exit_code == 0
    assert cli("graph", leaky, "leaky.py", "-o", "d1.dot", "--depth", "1").exit_code == 0
    _, full, _ = dot_graph(workspace / "full.dot")
    _, folded, labels = dot_graph(workspace / "d1.dot")
    assert len(folded) < len(full)
    folded_labels = set(labels.values())
    assert any(label.startswith("M = ") or "heads (" in label for label in folded_labels)
    assert {label.split(" := ")[-1].split(" (")[0] for label in folded_labels if "nodes)" in label} >= {
        "encoder", "heads", "energy", "context"}


def test_mermaid_output(cli, leaky, workspace):
    assert cli("graph", leaky, "leaky.py", "-o", "g.mmd").exit_code == 0
    text = (workspace / "g.mmd").read_text()
    assert text.startswith("flowchart TB\n")
    assert 'subgraph c0["component encoder (encoder)"]' in text
    assert text.count("subgraph ") == text.count("\n  end")
    edges = [line for line in text.splitlines() if " --> " in line]
    styled = [int(line.split()[1]) for line in text.splitlines() if line.strip().startswith("linkStyle")]
    assert styled and max(styled) < len(edges)
    assert "stroke:red" in text and "class " in text


def test_html_without_graphviz_is_self_contained(cli, leaky, workspace, monkeypatch):
    monkeypatch.setattr(graph_render, "has_graphviz", lambda: False)
    assert cli("graph", leaky, "leaky.py", "-o", "g.html").exit_code == 0
    text = (workspace / "g.html").read_text()
    root = ET.fromstring(text.split("\n", 1)[1])  # well-formed after the doctype
    assert not any(e.tag == "script" for e in root.iter()) and "http" not in text.replace(
        "http://www.w3.org/2000/svg", "")
    nodes = [e for e in root.iter() if e.tag.endswith("g") and e.get("class") == "node"]
    texts = " ".join("".join(t.itertext()) for t in root.iter() if t.tag.endswith("text"))
    assert len(nodes) > 10 and "logit := " in texts and "component encoder (encoder)" in texts
    red = [e for e in root.iter() if e.get("class") == "edge" and e.get("stroke") == "red"]
    assert red  # the forbidden path c -> z


def test_svg_without_graphviz_uses_the_python_layout(cli, leaky, workspace, monkeypatch):
    monkeypatch.setattr(graph_render, "has_graphviz", lambda: False)
    assert cli("graph", leaky, "leaky.py", "-o", "g.svg").exit_code == 0
    svg = ET.parse(workspace / "g.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("class") == "alignguard-graph"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_svg_and_html_render_with_graphviz(cli, leaky, workspace):
    assert cli("graph", leaky, "leaky.py", "-o", "g.svg").exit_code == 0
    svg = ET.parse(workspace / "g.svg").getroot()
    assert svg.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
    assert "logit := " in texts and "component encoder (encoder)" in texts
    assert cli("graph", leaky, "leaky.py", "-o", "g.html").exit_code == 0
    root = ET.fromstring((workspace / "g.html").read_text().split("\n", 1)[1])
    assert any(e.tag.endswith("svg") for e in root.iter())


def test_bad_output_extension(cli, leaky):
    result = cli("graph", leaky, "leaky.py", "-o", "g.png")
    assert result.exit_code == 2 and ".svg" in result.output
