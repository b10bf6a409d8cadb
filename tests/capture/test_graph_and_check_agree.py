"""`alignguard check` and `alignguard graph` read one graph: a module that component.called finds
called is drawn (has nodes of its own in the view), and every module the view draws was called.

The root cause of their disagreement was capture, not the commands: a module that returns a value
it did not compute (an identity autograd.Function, a pass-through) had no node, so check saw it
called while the view had nothing to draw, and its readers seemed to read its input."""

from __future__ import annotations

from pathlib import Path

import pytest
from idioms import IDIOMS
from test_capture_conformance import build
from typer.testing import CliRunner

from alignguard.cli.app import app
from alignguard.graph.capture import capture_graph
from alignguard.report.graph_view import node_module

FIXTURES = Path(__file__).parent / "fixtures"
PATHS = [pytest.param(idiom, method, id=f"{idiom.name}-{method}", marks=[pytest.mark.slow] if idiom.slow else [])
         for idiom in IDIOMS for method in (("fx", "eager") if idiom.fx == "traces" else ("eager",))]


def drawn_modules(graph) -> set[str]:
    """Modules the graph view draws a node in: a node drawn in `a.b` is inside `a` too."""
    drawn = set()
    for _, data in graph.graph.nodes(data=True):
        module = node_module(data)
        parts = module.split(".") if module else []
        drawn.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return drawn


@pytest.mark.parametrize(("idiom", "method"), PATHS)
def test_every_called_module_is_drawn_and_every_drawn_module_called(idiom, method):
    graph = capture_graph(build(idiom), idiom.batch(), method=method)
    called = graph.called_modules()  # what component.called reads
    assert called == drawn_modules(graph)
    for path in called:  # what component.on_path and flow read for a component
        assert len(graph.module_nodes(path)), path


def test_revgrad_module_check_and_graph_agree(tmp_path):
    """The issue's case: check passed component.called while graph said 'has no node', and
    flow.forbidden reported the reversal flowing into the class head, which never reads it."""
    spec, model = FIXTURES / "revgrad_spec.yaml", FIXTURES / "revgrad_model.py"
    checked = CliRunner().invoke(app, ["check", str(spec), str(model)])
    assert checked.exit_code == 0, checked.output
    assert "PASS   flow.forbidden: no data-flow path reversal -> label" in checked.output
    drawn = CliRunner().invoke(app, ["graph", str(spec), str(model), "--output", str(tmp_path / "g.dot")])
    assert drawn.exit_code == 0, drawn.output
    assert "has no node" not in drawn.output and "0 forbidden-path edges" in drawn.output
    assert "reversal" in (tmp_path / "g.dot").read_text()
