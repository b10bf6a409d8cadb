"""Each operator on the tiny CMDN: where it applies, and what the mutated model really computes.

No check runs here: these tests pin the operators' behaviour, not the checkers' verdicts.
"""

from __future__ import annotations

import pytest
import torch

from alignguard.graph.capture_fx import capture_fx
from alignguard.modelfile.loader import forward_arguments
from alignguard.mutate.analysis import analyse
from alignguard.mutate.operators import all_operators
from alignguard.mutate.operators.losses import GradientReversal
from alignguard.mutate.runner import plan
from mutate_helpers import build, by_prefix, forward, load

FORMULA = {
    "arith.mul_to_add": lambda o: (o["M"] + o["U_I"] + o["B"]) / o["T"],
    "arith.add_to_mul": lambda o: (o["M"] * o["U_I"] * o["B"]) / o["T"],
    "arith.div_to_mul": lambda o: (o["M"] * o["U_I"] + o["B"]) * o["T"],
    "head.additive": lambda o: (o["U_I"] - o["M"] + o["B"]) / o["T"],
}


def test_every_operator_applies_to_the_tiny_cmdn(tiny):
    _, _, _, mutants, skipped = tiny
    assert skipped == []
    assert {m.operator for m in mutants.values()} == {op.id for op in all_operators()}
    assert len(mutants) == len(set(mutants)), "mutant ids are unique"
    # One target per design element, and none inside the symbols' own internals.
    assert sorted(m.target for m in mutants.values() if m.operator == "positivity.removed") == ["M", "T"]
    assert [m.target for m in mutants.values() if m.operator == "context.shared"] == ["T"]
    assert sorted(m.target for m in mutants.values() if m.operator == "flow.context_into_invariant") == [
        "bottleneck", "energy"]
    assert [m.target for m in mutants.values() if m.operator == "component.identity"] == ["refine"]
    assert sum(m.operator.startswith("arith.") for m in mutants.values()) == 3


def test_a_model_without_the_design_gets_only_generic_mutants(tmp_path):
    spec_path = tmp_path / "plain.yaml"
    spec_path.write_text("version: 1\nname: plain\ninputs: {x: {role: invariant}}\nsymbols: {logit: logit}\n")
    spec, model_file = load(str(spec_path), "plain_mlp.py")
    mutants, skipped, _ = plan(analyse(spec, model_file), all_operators())
    # One loss term: dropping it would leave loss_terms returning {}, which is no model file at all.
    assert {m.operator for m in mutants} == {"loss.detached", "loss.zero_weight", "loss.reversed",
                                            "component.constant"}
    not_applied = {s.operator for s in skipped}
    assert {"loss.dropped", "noise.removed", "noise.eval_only", "noise.unused", "arith.mul_to_add", "head.additive",
            "context.shared", "positivity.removed", "flow.context_into_invariant", "loss.adversarial",
            "component.identity"} <= not_applied
    assert all(s.reason.startswith("no target") for s in skipped)


def test_an_untraceable_model_still_gets_the_loss_and_bypass_mutants(tmp_path):
    spec_path = tmp_path / "gated.yaml"
    spec_path.write_text("version: 1\nname: gated\ninputs: {x: {role: invariant}}\nsymbols: {logit: logit}\n")
    spec, model_file = load(str(spec_path), "untraceable.py")
    analysis = analyse(spec, model_file)
    mutants, skipped, _ = plan(analysis, all_operators())
    assert analysis.graph is None and "TraceError" in analysis.trace_error
    assert {m.operator for m in mutants} == {"loss.detached", "loss.zero_weight", "loss.reversed",
                                            "component.constant"}
    graph_operators = {op.id for op in all_operators() if op.needs_graph}
    assert {s.operator for s in skipped if s.reason.startswith("torch.fx cannot trace")} == graph_operators


def _z_twice(model_file, model, train=True):
    """Two forward passes under different seeds."""
    torch.manual_seed(1)
    first, _ = forward(model_file, model, train=train)
    torch.manual_seed(2)
    second, _ = forward(model_file, model, train=train)
    return first, second


def test_noise_removed_makes_training_deterministic_and_drops_the_draw(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, by_prefix(mutants, "noise.removed"))
    first, second = _z_twice(model_file, model)
    assert torch.equal(first["z_I"], first["mu"]) and torch.equal(first["z_I"], second["z_I"])
    graph = capture_fx(model)
    assert not [n for n in graph.nodes_of_kind("random") if "bottleneck" in graph.node(n).get("scopes", ())]
    assert "bottleneck" in graph.called_modules()


def test_noise_eval_only_draws_in_eval_not_in_training(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, by_prefix(mutants, "noise.eval_only"))
    train, _ = _z_twice(model_file, model, train=True)
    assert torch.equal(train["z_I"], train["mu"])
    first, second = _z_twice(model_file, model, train=False)
    assert not torch.equal(first["z_I"], first["mu"]) and not torch.equal(first["z_I"], second["z_I"])


def test_noise_unused_keeps_the_draw_but_not_its_value(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, by_prefix(mutants, "noise.unused"))
    out, _ = forward(model_file, model)
    assert torch.equal(out["z_I"], out["mu"])
    graph = capture_fx(model)
    assert [n for n in graph.nodes_of_kind("random") if "bottleneck" in graph.node(n).get("scopes", ())]


@pytest.mark.parametrize("operator", sorted(FORMULA))
def test_formula_operators_compute_the_altered_formula(tiny, operator):
    _, model_file, _, mutants, _ = tiny
    original, _ = forward(model_file, build(model_file)[0], train=False)
    model, _ = build(model_file, by_prefix(mutants, operator))
    out, _ = forward(model_file, model, train=False)
    torch.testing.assert_close(out["logit"], FORMULA[operator](out))
    assert not torch.allclose(out["logit"], original["logit"])


def test_shared_temperature_is_one_value_for_the_whole_batch(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, by_prefix(mutants, "context.shared"))
    out, _ = forward(model_file, model, train=False)
    assert torch.all(out["T"] == out["T"][0])
    torch.testing.assert_close(out["logit"], (out["M"] * out["U_I"] + out["B"]) / out["T"])


@pytest.mark.parametrize("symbol", ["M", "T"])
def test_positivity_removed_lets_the_symbol_go_negative(tiny, symbol):
    _, model_file, _, mutants, _ = tiny
    extreme = {"c": 50 * torch.randn(256, 3, generator=torch.Generator().manual_seed(1))}
    original, _ = forward(model_file, build(model_file)[0], batch_size=256, train=False, **extreme)
    model, _ = build(model_file, mutants[f"positivity.removed:{symbol}"])
    out, _ = forward(model_file, model, batch_size=256, train=False, **extreme)
    assert original[symbol].min() > 0 and out[symbol].min() < 0


def _swap_context(model_file, model):
    """The same x under two contexts (eval mode)."""
    out_a, batch = forward(model_file, model, train=False)
    out_b, _ = forward(model_file, model, train=False, c=batch["c"].flip(0))
    return out_a, out_b


def test_context_routed_into_the_bottleneck_reaches_z(tiny):
    _, model_file, _, mutants, _ = tiny
    a, b = _swap_context(model_file, build(model_file)[0])
    assert torch.equal(a["z_I"], b["z_I"])
    model, _ = build(model_file, mutants["flow.context_into_invariant:bottleneck"])
    a, b = _swap_context(model_file, model)
    assert not torch.allclose(a["z_I"], b["z_I"])
    assert hasattr(model.bottleneck, "mutant_context_projection")
    assert forward_arguments(model) == ["x", "c"]


def test_context_routed_into_the_energy_reaches_u_only(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, mutants["flow.context_into_invariant:energy"])
    a, b = _swap_context(model_file, model)
    assert torch.equal(a["z_I"], b["z_I"]) and not torch.allclose(a["U_I"], b["U_I"])


def _terms(model_file, mutant):
    model, source = build(model_file, mutant)
    out, batch = forward(model_file, model)
    return model, source.loss_terms(model, batch, out, 0)


def test_loss_edits(tiny):
    _, model_file, _, mutants, _ = tiny
    _, original = _terms(model_file, None)
    _, detached = _terms(model_file, mutants["loss.detached:loss kl"])
    _, zero = _terms(model_file, mutants["loss.zero_weight:loss kl"])
    _, dropped = _terms(model_file, mutants["loss.dropped:loss kl"])
    assert original["kl"].requires_grad and not detached["kl"].requires_grad
    torch.testing.assert_close(detached["kl"], original["kl"])
    assert float(zero["kl"].detach()) == 0.0 and zero["kl"].requires_grad
    assert set(dropped) == {"bce"}


def test_reversed_loss_keeps_its_value_and_negates_its_gradient(tiny):
    _, model_file, _, mutants, _ = tiny
    gradients = []
    for mutant in (None, mutants["loss.reversed:loss bce"]):
        model, terms = _terms(model_file, mutant)
        gradients.append((terms["bce"].detach(), torch.autograd.grad(terms["bce"], model.energy.linear.weight)[0]))
    (value, grad), (value_r, grad_r) = gradients
    torch.testing.assert_close(value_r, value)
    torch.testing.assert_close(grad_r, -grad)


def test_adversarial_term_trains_a_context_head_through_a_reversal(tiny):
    _, model_file, _, mutants, _ = tiny
    model, terms = _terms(model_file, mutants["loss.adversarial:loss adversarial"])
    assert set(terms) == {"bce", "kl", "adversarial"}
    head, encoder = model.mutant_adversary.weight, model.encoder.net[0].weight
    g_head, g_encoder = torch.autograd.grad(terms["adversarial"], [head, encoder])
    assert g_head.abs().sum() > 0 and g_encoder.abs().sum() > 0


def test_gradient_reversal_is_identity_forward_and_negation_backward():
    x = torch.randn(5, requires_grad=True)
    y = GradientReversal.apply(x)
    torch.testing.assert_close(y, x)
    (grad,) = torch.autograd.grad((y * torch.arange(5.0)).sum(), x)
    torch.testing.assert_close(grad, -torch.arange(5.0))


def test_identity_bypass_skips_the_module(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, mutants["component.identity:refine"])
    out, _ = forward(model_file, model, train=False)
    torch.testing.assert_close(out["U_I"], model.energy(out["z_I"]))
    assert "refine.linear.weight" in dict(model.named_parameters())  # still there, now unused


def test_constant_bypass_returns_the_mean_example_output(tiny):
    _, model_file, analysis, mutants, _ = tiny
    model, _ = build(model_file, mutants["component.constant:modulator"])
    out, _ = forward(model_file, model, batch_size=7)
    sample_M = analysis.samples["modulator"].output[0]
    assert out["M"].shape == (7,)
    torch.testing.assert_close(out["M"], sample_M.mean(0).expand(7))


def test_edited_modules_keep_their_methods_class_and_scopes(tiny):
    _, model_file, _, mutants, _ = tiny
    model, _ = build(model_file, by_prefix(mutants, "noise.unused"))
    assert type(model.bottleneck).__name__ == "Bottleneck"
    assert callable(model.bottleneck.kl)
    graph = capture_fx(model)
    assert {"encoder", "bottleneck", "refine", "energy", "modulator"} <= graph.called_modules()
    assert graph.module_outputs("bottleneck")
