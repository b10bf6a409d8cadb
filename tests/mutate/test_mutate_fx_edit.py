"""The rewriting machinery: one module's own code, both modes, fresh draws, the instance's identity."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

from alignguard.modelfile.loader import forward_arguments
from alignguard.mutate.fx_edit import EditNotApplicable, edit_module, install_forward
from alignguard.mutate.tracing import NodeRef, find, ref_of, trace_model, trace_own_code
from mutate_helpers import load


def _no_change(graph: fx.Graph, module) -> bool:
    return True


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        if self.training:
            return self.inner(x) * 2.0
        return self.inner(x) - 1.0


def test_own_code_trace_keeps_children_as_calls():
    graph = trace_own_code(Branchy(), training=True)
    assert [n.op for n in graph.nodes] == ["placeholder", "call_module", "call_function", "output"]


def test_a_random_draw_of_concrete_shape_stays_a_fresh_draw():
    _, model_file = load("tiny_weak.yaml", "fixed_shape_noise.py")
    model = model_file.build_model()
    graph = trace_own_code(model.noisy, training=True)
    assert any(n.op == "call_function" and n.target is torch.randn for n in graph.nodes)
    edit_module(model, "noisy", _no_change, "test")
    x = torch.randn(8, 4)
    assert not torch.equal(model(x)["z"], model(x)["z"])


def test_an_edit_applies_per_mode_and_the_other_mode_keeps_the_original():
    module = Branchy()
    x = torch.randn(3, 2)
    expected_eval = module.eval()(x)

    def double_to_triple(graph: fx.Graph, _) -> bool:
        hits = [n for n in graph.nodes if n.op == "call_function" and 2.0 in n.args]
        for node in hits:
            node.args = tuple(3.0 if a == 2.0 else a for a in node.args)
        return bool(hits)

    edit_module(module, "", double_to_triple, "test")
    torch.testing.assert_close(module.train()(x), module.inner(x) * 3.0)
    torch.testing.assert_close(module.eval()(x), expected_eval)


def test_an_edit_whose_target_is_gone_says_so():
    with pytest.raises(EditNotApplicable):
        edit_module(Branchy(), "", lambda graph, module: False, "test")


def test_installed_forward_keeps_class_signature_and_methods():
    _, model_file = load("tiny_strong.yaml", "tiny_cmdn.py")
    model = model_file.build_model()
    original = type(model)
    install_forward(model, original.forward, original.forward, "test")
    assert isinstance(model, original) and type(model).__name__ == original.__name__
    assert forward_arguments(model) == ["x", "c"]
    other = model_file.build_model()
    assert type(other) is original, "only the instance changes, never the user's class"


def test_a_node_of_the_whole_model_is_found_again_in_its_owners_code():
    _, model_file = load("tiny_strong.yaml", "tiny_cmdn.py")
    model = model_file.build_model()
    graph, _ = trace_model(model)
    softplus = [n for n in graph.nodes if n.op == "call_function" and "softplus" in str(n.target)]
    refs = [ref_of(n, graph) for n in softplus]
    assert [r.owner for r in refs] == ["modulator", "modulator"] and refs[0].line != refs[1].line
    own = trace_own_code(model.modulator, training=True)
    found = [find(own, r) for r in refs]
    assert found[0] is not found[1] and all(f is not None for f in found)
    assert find(own, NodeRef("modulator", "call_function", "torch.exp", None, 0)) is None
