"""Graph capture: fx hardening, the eager fallback, and one graph form for both."""

from __future__ import annotations

from collections import Counter

import graph_zoo as zoo
import pytest
import torch

from alignguard.errors import CaptureError
from alignguard.graph.capture import capture_graph
from alignguard.graph.capture_eager import capture_eager
from alignguard.graph.capture_fx import capture_fx
from alignguard.graph.model_graph import Ref

BOTH = ["fx", "eager"]


def capture(model, method, batches=None):
    return capture_graph(model, batches or zoo.batch(), method=method)


def ops(graph, kinds=("op", "module", "random", "const")):
    return Counter(d["op"] for _, d in graph.graph.nodes(data=True) if d["kind"] in kinds)


@pytest.mark.parametrize("method", BOTH)
def test_inplace_ops_redirect_later_reads(method):
    graph = capture(zoo.InPlace(), method)
    out = graph.outputs["output"]
    assert graph.node(out)["op"] == "add"
    chain = [graph.node(n)["op"] for n in graph.shortest_path(graph.inputs["x"], out)]
    assert chain == ["input", "linear", "mul", "clamp", "add"]


def test_item_assignment_falls_back_and_is_a_mutation():
    graph = capture_graph(zoo.SetItem(), zoo.batch())
    assert graph.capture.startswith("eager") and "item assignment" in graph.capture_note
    out = graph.outputs["output"]
    setitem = [n for n in graph.ancestors(out) if graph.node(n)["op"] == "setitem"]
    assert len(setitem) == 1
    assert {graph.node(n)["op"] for n in graph.graph.predecessors(setitem[0])} == {"mul", "getitem"}


def test_fx_baked_tensor_is_a_const_and_the_model_is_left_untouched():
    model = zoo.BakedConstant()
    graph = capture(model, "fx")
    baked = [n for n, d in graph.graph.nodes(data=True) if d["kind"] == "const" and d.get("baked")]
    assert len(baked) == 1 and graph.node(baked[0])["shape"] == (6,)
    assert not [k for k in vars(model) if k.startswith("_tensor_constant")]


def test_fx_refuses_a_random_draw_it_would_bake_and_leaves_the_random_stream_alone():
    model = zoo.Baked()
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    with pytest.raises(CaptureError) as caught:
        capture(model, "fx")
    assert "random draw ran once while fx traced" in str(caught.value) and "graph_zoo.py:" in str(caught.value)
    assert torch.equal(torch.rand(1), expected)
    assert not [k for k in vars(model) if k.startswith("_tensor_constant")]
    graph = capture_graph(model, zoo.batch())
    assert graph.capture.startswith("eager") and "random draw ran once" in graph.capture_note


def test_eager_sees_the_random_call_fx_baked():
    graph = capture(zoo.Baked(), "eager")
    random = [n for n, d in graph.graph.nodes(data=True) if d["kind"] == "random"]
    assert [graph.node(n)["op"] for n in random] == ["randn"]
    assert graph.reaches(random[0], graph.outputs["output"])


@pytest.mark.parametrize("method", BOTH)
def test_every_spelling_normalises_to_one_op(method):
    graph = capture(zoo.Spellings(), method)
    for key in "abcd":
        assert graph.node(graph.outputs[key])["op"] == "mul", key
    counts = ops(graph)
    assert counts["exp"] == 2 and counts["sub"] == 4 and counts["div"] == 4
    # `1 - x` and `2 / x` keep their operand order (reflected dunders are swapped back).
    reflected = [graph.operands(n) for n, d in graph.graph.nodes(data=True)
                 if d["op"] in ("sub", "div") and not isinstance(graph.operands(n)[0], Ref)]
    assert sorted(o[0] for o in reflected) == [1, 2]


@pytest.mark.parametrize("method", BOTH)
def test_tuple_elements_stay_distinct_and_shape_reads_carry_no_data(method):
    graph = capture(zoo.Selections(), method)
    first, second = graph.outputs["first"], graph.outputs["second"]
    assert first != second and graph.node(first)["op"] == "getitem_tuple"
    assert graph.node(graph.outputs["top"])["op"] == "getitem_tuple"
    noise = graph.outputs["noise"]
    assert graph.node(noise)["kind"] == "random" and not graph.ancestors(noise)  # randn_like reads a shape
    scaled = graph.outputs["scaled"]
    assert graph.inputs["x"] in graph.ancestors(scaled)


def test_fallback_on_data_dependent_if_says_why():
    graph = capture_graph(zoo.DimIf(), zoo.batch())
    assert graph.capture.startswith("eager recorder")
    assert "torch.fx could not trace the model (TraceError at" in graph.capture_note
    assert "graph_zoo.py:" in graph.capture_note
    out = graph.outputs["output"]
    assert graph.node(out)["op"] == "exp" and graph.node(out)["file"].endswith("graph_zoo.py")
    assert [c.path for c in graph.module_calls] == ["lin"]


def test_fallback_on_len_of_a_proxy():
    graph = capture_graph(zoo.LenOfTensor(), zoo.batch())
    assert graph.capture.startswith("eager") and "len" in graph.capture_note


def test_fx_only_raises_a_capture_error_with_the_line():
    with pytest.raises(CaptureError) as caught:
        capture_graph(zoo.DimIf(), zoo.batch(), method="fx")
    assert "graph_zoo.py:" in str(caught.value)


def test_rsample_is_a_random_source_scaled_by_its_sigma():
    graph = capture_graph(zoo.Rsample(), zoo.batch())
    assert graph.capture.startswith("eager")
    random = [n for n, d in graph.graph.nodes(data=True) if d["kind"] == "random"]
    assert len(random) == 1 and graph.node(random[0])["op"] == "normal"
    products = [n for n in graph.descendants(random[0]) if graph.node(n)["op"] == "mul"]
    assert products, "the product eps * scale must be visible"
    scale_side = [r for r in graph.operand_nodes(products[0]) if r not in graph.descendants(random[0]) | {random[0]}]
    assert "log_sigma" in {graph.node(a).get("target") for a in graph.ancestors(scale_side[0]) | {scale_side[0]}}
    assert graph.node(random[0])["file"].endswith("graph_zoo.py")  # the user's line, not torch's


@pytest.mark.parametrize("method", BOTH)
def test_grl_is_inlined_and_tagged_not_trusted_for_gradients(method):
    model = zoo.WithGRL()
    graph = capture(model, method)
    tagged = [n for n, d in graph.graph.nodes(data=True) if d.get("autograd_function") == "GradReverse"]
    assert [graph.node(n)["op"] for n in tagged] == ["view_as", "autograd_function"]  # its op, its output
    assert "GradReverse was inlined" in graph.capture_note and "autograd on the real model" in graph.capture_note
    assert not any(key.startswith("grad") or "backward" in key for _, d in graph.graph.nodes(data=True) for key in d)
    # The real model still reverses gradients: capture did not replace or disturb it.
    x = zoo.batch()["x"].requires_grad_()
    model(x)["domain"].sum().backward()
    z = model.features(x)
    expected = -torch.autograd.grad(model.domain(z).sum(), x)[0]
    assert torch.allclose(x.grad, expected)


def test_eager_on_two_batches_unions_both_branches():
    graph = capture_eager(zoo.Branchy(), [zoo.batch(sign=1.0), zoo.batch(sign=-1.0)])
    out = graph.outputs["out"]
    assert graph.node(out)["op"] == "branch"
    assert sorted(graph.node(n)["op"] for n in graph.operand_nodes(out)) == ["mul", "sub"]
    assert "2 batches" in graph.capture and "different example batches" in graph.capture_note
    single = capture_eager(zoo.Branchy(), zoo.batch(sign=1.0))
    assert single.node(single.outputs["out"])["op"] == "mul"


@pytest.mark.parametrize("method", BOTH)
def test_dropout_is_random_in_train_mode_only(method):
    train = capture_graph(zoo.Dropouts(), zoo.batch(), method=method)
    evaluation = capture_graph(zoo.Dropouts(), zoo.batch(), training=False, method=method)
    assert ops(train, ("random",))["dropout"] == 2
    assert not ops(evaluation, ("random",)) and ops(evaluation)["dropout_eval"] == 2
    assert train.training and not evaluation.training


def test_capture_restores_the_users_modes():
    model = zoo.Dropouts()
    model.eval()
    model.drop.train()
    for method in BOTH:
        capture_graph(model, zoo.batch(), method=method)
        assert not model.training and model.drop.training


@pytest.mark.parametrize("model_class", [zoo.InPlace, zoo.Spellings, zoo.Selections, zoo.WithGRL, zoo.Shared])
def test_fx_and_eager_give_the_same_graph_form(model_class):
    model = model_class()
    fx_graph, eager_graph = capture(model, "fx"), capture(model, "eager")

    def form(graph):  # fx also keeps shape reads (x.shape[0]) as data-less nodes; eager sees plain ints
        shape_reads = {n for n, d in graph.graph.nodes(data=True) if d["op"] in ("size", "shape_getitem")}
        nodes = Counter((d["kind"], d["op"], d["scope"], d.get("line")) for n, d in graph.graph.nodes(data=True)
                        if d["kind"] not in ("const", "param") and n not in shape_reads)
        edges = sum(1 for a, b in graph.graph.edges if a not in shape_reads)
        return nodes, edges

    assert form(fx_graph) == form(eager_graph)
    assert sorted(fx_graph.outputs) == sorted(eager_graph.outputs)
    assert [c.path for c in fx_graph.module_calls] == [c.path for c in eager_graph.module_calls]


def test_shared_module_calls_keep_one_path():
    graph = capture_fx(zoo.Shared())
    assert [c.path for c in graph.module_calls].count("block") == 2
    assert ops(graph)["tanh"] == 2 and all("@" not in s for _, d in graph.graph.nodes(data=True)
                                            for s in d.get("scopes", ()))


def test_a_model_that_raises_is_a_capture_error():
    class Broken(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                raise ValueError("bad input")
            return x

    with pytest.raises(CaptureError) as caught:
        capture_graph(Broken(), zoo.batch())
    assert "ValueError" in str(caught.value) and "test_graph_capture.py:" in str(caught.value)


def test_optional_arguments_are_traced_at_their_defaults():
    graph = capture_fx(zoo.OptionalArgs(), batch=zoo.batch())
    assert list(graph.inputs) == ["x"] and list(graph.outputs) == ["y"]
    assert sorted(d["op"] for _, d in graph.graph.nodes(data=True) if d["kind"] != "output") == \
        ["input", "linear", "mul"]
    assert graph.operands(graph.outputs["y"])[1] == 2.0
