"""`alignguard check` and `alignguard graph` read one graph: a module that component.called finds
called is drawn (has nodes of its own in the view), and every module the view draws was called.

The root cause of their disagreement was capture, not the commands: a module that returns a value
it did not compute (an identity autograd.Function, a pass-through) had no node, so check saw it
called while the view had nothing to draw, and its readers seemed to read its input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from idioms import IDIOMS
from test_capture_conformance import build
from torch import nn
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


class GaussianNoise(nn.Module):  # the usual noise layer: identity outside training
    def forward(self, x):
        return x + 0.1 * torch.randn_like(x) if self.training else x


class NoisyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Linear(6, 4)
        self.noise = GaussianNoise()
        self.head = nn.Linear(4, 2)
        self.probe = nn.Linear(4, 1)

    def forward(self, x):
        z = self.feat(x)
        return {"y": self.head(self.noise(z)), "probe": self.probe(z)}


@pytest.mark.parametrize("method", ["fx", "eager"])
def test_an_eval_mode_identity_layer_is_its_own_node(method):
    batch = {"x": torch.randn(4, 6)}
    graph = capture_graph(NoisyClassifier(), batch, training=False, method=method)
    (call,) = graph.module_outputs("noise")
    returned = call.outputs[0]
    assert graph.node(returned)["op"] == "passthrough" and "noise" in graph.node(returned)["scopes"]
    assert graph.reaches(returned, graph.outputs["y"]) and not graph.reaches(returned, graph.outputs["probe"])
    assert "noise" in drawn_modules(graph) and "noise" in graph.called_modules()
