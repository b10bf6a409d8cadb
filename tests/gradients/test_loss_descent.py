"""loss.descent on purpose-built models (tests/gradients/models/descent_models.py, curved_models.py) and the
reference models."""

import math
import re

import pytest
import torch

from alignguard.checks.catalogue import explanation
from alignguard.checks.context import CheckContext
from alignguard.checks.gradients.descent import LossDescentCheck
from alignguard.checks.gradients.shared_direction import shared_group
from alignguard.modelfile.loader import forward_inputs, load_model_file
from alignguard.results import Status
from grad_helpers import HERE, REPO, spec_with

MODEL = HERE / "models" / "descent_models.py"
CURVED = HERE / "models" / "curved_models.py"
SPEC = HERE / "specs" / "descent_spec.yaml"


def context_for(model_path=MODEL, spec_path=SPEC, **changes):
    spec = spec_with(spec_path, **changes)
    torch.manual_seed(0)
    model_file = load_model_file(model_path, spec.entry_points)
    return CheckContext(spec=spec, model_file=model_file, model=model_file.build())


def descent(terms="loss_terms", model_path=MODEL, **changes):
    context = context_for(model_path, **{"entry_points.loss_terms": terms, **changes})
    results = list(LossDescentCheck().run(context))
    assert "capture" not in context._memo, "loss.descent must not need the traced graph"
    return {r.element: r for r in results}


def test_honest_terms_descend_despite_large_noise():
    results = descent()
    assert set(results) == {"loss bce", "loss kl"}
    for result in results.values():
        assert result.status is Status.PASS, result.found
        assert result.details["ratio"] == pytest.approx(1.0, abs=0.01)
        assert result.details["slope"] == pytest.approx(result.details["predicted_slope"], rel=0.01)
        assert result.details["direction"] == "shared"  # one pair of forwards served both terms
    assert results["loss kl"].details["step"] == 5
    # The check is only meaningful because every forward draws the same noise: two seeds differ by far
    # more than the whole central difference 2ε|g|.
    context = context_for()
    model, batch = context.model.train(), context.batch(0)
    values = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        outputs = model(**forward_inputs(model, batch))
        values.append(float(context.model_file.loss_terms(model, batch, outputs, 5)["bce"].detach()))
    assert abs(values[0] - values[1]) > 100 * 2 * 1e-3 * results["loss bce"].details["grad_norm"]


def test_parameters_buffers_mode_and_random_state_are_restored_exactly():
    context = context_for(**{"entry_points.loss_terms": "domain_terms"})
    model = context.model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    results = list(LossDescentCheck().run(context))
    assert results and any(r.failed for r in results)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit for bit, BatchNorm statistics included
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_reversed_term_gives_minus_one_at_every_step():
    results = descent("reversed_terms")
    kl = results["loss kl"]
    assert kl.failed and kl.details["ratio"] == pytest.approx(-1.0, abs=0.01)
    assert "the gradient is reversed, so minimising the total maximises this term" in kl.found
    # One shorter step, no closer to 1: not curvature, and shrinking stops there.
    assert [e for e, _ in kl.details["ratios"]] == [1e-3, 1e-4]
    assert all(r == pytest.approx(-1.0, abs=0.01) for _, r in kl.details["ratios"])
    assert "ratio -1.000 at ε = 0.001, -1.000 at ε = 0.0001" in kl.found
    assert "no closer to 1" in kl.found
    assert kl.details["direction"] == "own"  # it missed along the shared direction: judged along ĝ_kl
    assert results["loss bce"].status is Status.PASS and results["loss bce"].details["direction"] == "shared"


def test_gradient_reversal_inside_a_term_is_named_in_the_seed_words():
    results = descent("domain_terms")
    domain = results["loss domain"]
    assert domain.failed and domain.details["ratio"] < 0.9
    first, shorter = (r for _, r in domain.details["ratios"])
    assert shorter == pytest.approx(first, abs=0.01)  # the mismatch does not shrink with the step
    assert "the gradient of L_domain is not the slope of L_domain" in domain.found
    assert "remove the gradient reversal" in domain.fix
    assert results["loss bce"].status is Status.PASS and results["loss kl"].status is Status.PASS


def test_scaled_custom_backward_fails_unless_the_tolerance_allows_it():
    bce = descent("scaled_terms")["loss bce"]
    assert bce.failed and bce.details["ratio"] == pytest.approx(1 / 3, abs=0.01)
    assert [r for _, r in bce.details["ratios"]] == pytest.approx([1 / 3, 1 / 3], abs=0.01)
    loose = descent("scaled_terms", **{"gradients.descent_tolerance": 0.7})["loss bce"]
    assert loose.status is Status.PASS


def test_straight_through_estimator_fails_by_design():
    quantised = descent("straight_through_terms")["loss quantised"]
    assert quantised.failed and "waive loss.descent" in quantised.fix


def test_epsilon_comes_from_the_spec():
    results = descent(**{"gradients.descent_epsilon": 1e-2})
    assert all(r.details["epsilon"] == 1e-2 and r.status is Status.PASS for r in results.values())


def counted_forwards(context):
    calls = []
    context.model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_passing_terms_pay_for_no_shorter_step():
    context = context_for()
    calls = counted_forwards(context)
    results = list(LossDescentCheck().run(context))
    assert all(r.status is Status.PASS and len(r.details["ratios"]) == 1 for r in results)
    assert {r.details["direction"] for r in results} == {"shared"}
    assert len(calls) == 1 + 2  # the gradient's forward, then one pair θ ± εd that serves both terms


def wave_ratio(epsilon, along=1.0):
    """The curved model's exact central-difference ratio: sin(2Kε)/(2Kε) (see curved_models.py), for a
    step whose cosine with ĝ_wave is `along` (1: along ĝ_wave itself)."""
    x = 2 * 1e4 * epsilon * along
    return math.sin(x) / x


def test_a_step_too_long_for_the_curvature_is_not_a_wrong_gradient():
    context = context_for(CURVED)
    before = {k: v.clone() for k, v in context.model.state_dict().items()}
    calls = counted_forwards(context)
    results = {r.element: r for r in LossDescentCheck().run(context)}
    wave = results["loss wave"]
    assert wave.status is Status.PASS, wave.found
    assert wave.details["direction"] == "shared"
    # along the shared direction d, the phase moves by ε·cos(d, ĝ_wave): the ratio is the same sine's
    along = wave.details["predicted_slope"] / wave.details["grad_norm"]
    assert 0.3 < along < 0.9
    assert [e for e, _ in wave.details["ratios"]] == [1e-3, 1e-4, 1e-5]
    assert [r for _, r in wave.details["ratios"]] == pytest.approx(
        [wave_ratio(e, along) for e in (1e-3, 1e-4, 1e-5)], abs=1e-3)
    assert wave.details["ratios"][0][1] < 0.1  # the default step alone would have failed it
    assert wave.details["epsilon"] == 1e-5 and wave.details["ratio"] == pytest.approx(wave_ratio(1e-5, along), abs=1e-3)
    assert "measured curvature, not the gradient" in wave.found
    assert all(len(results[t].details["ratios"]) == 1 for t in ("loss bce", "loss kl"))
    # the gradient's forward, then one pair θ ± εd for all three terms; `wave` reads no output of forward
    # (a function of the parameters alone), so its two shorter steps run `loss_terms` only
    assert len(calls) == 1 + 2
    assert all(torch.equal(before[k], v) for k, v in context.model.state_dict().items())


def test_a_reversed_gradient_on_a_curved_term_still_fails():
    wave = descent("reversed_terms", CURVED)["loss wave"]
    assert wave.failed and "the gradient is reversed" in wave.found
    # Shrinking moves the ratio from −0.046 toward −1, away from +1: it stops after one shorter step.
    assert [r for _, r in wave.details["ratios"]] == pytest.approx([-wave_ratio(1e-3), -wave_ratio(1e-4)], abs=1e-3)
    assert "-0.046 at ε = 0.001, -0.455 at ε = 0.0001" in wave.found and "no closer to 1" in wave.found


def test_ratios_that_approach_one_but_miss_a_tight_tolerance_are_called_curvature():
    wave = descent(model_path=CURVED, **{"gradients.descent_tolerance": 1e-5})["loss wave"]
    assert wave.failed and "approaches |g_wave| as the step shrinks" in wave.found
    assert [e for e, _ in wave.details["ratios"]] == [1e-3, 1e-4, 1e-5, 1e-6]  # every shorter step tried
    assert wave.details["ratio"] == pytest.approx(wave_ratio(1e-6), abs=1e-5)
    assert re.search(r"\+0\.99993\d at ε = 1e-06\)", wave.found)  # as many digits as the tolerance needs
    assert "raise `gradients.descent_tolerance`" in wave.fix


def test_no_step_below_the_float_rounding_of_the_parameters():
    # At ε = 1e-7 the curved term's parameters (0.25 in float32) still move by about two ulps; at
    # 1e-8 the step rounds away, so shrinking stops and says why.
    wave = descent("reversed_terms", CURVED, **{"gradients.descent_epsilon": 1e-7})["loss wave"]
    assert wave.failed and wave.details["ratio"] == pytest.approx(-1.0, abs=0.01)
    assert len(wave.details["ratios"]) == 1
    assert "no shorter step: ε = 1e-08 is below the parameters' float rounding" in wave.found


def test_a_spec_step_below_the_float_rounding_of_the_value_is_named():
    kl = descent("reversed_terms", **{"gradients.descent_epsilon": 1e-7})["loss kl"]
    assert kl.failed and len(kl.details["ratios"]) == 1
    assert "ε = 1e-07 itself is below the value's float rounding" in kl.found


def test_switched_off():
    spec = spec_with(SPEC, **{"gradients.descent": False})
    assert not LossDescentCheck().applies(spec)


def test_explanation():
    text = explanation("loss.descent")
    assert "(L_i(θ+εĝ_i) − L_i(θ−εĝ_i))/2ε" in text and "Fix:" in text


@pytest.mark.parametrize("model, failing", [("cmdn.py", set()), ("legacy_energy.py", {"loss domain"})])
def test_reference_models(model, failing):
    path = REPO / "models" / model
    if not path.exists():
        pytest.skip(f"{model} is not written yet")
    context = context_for(path, REPO / "specs" / "cmdn.yaml")
    results = list(LossDescentCheck().run(context))
    assert {r.element for r in results if r.failed} == failing
    assert all(abs(r.details["ratio"] - 1) < 0.01 for r in results if not r.failed)


def test_descent_runs_no_forward_or_backward_of_its_own():
    """loss.descent reads the gradient measurement's first batch (issue 20): with the measurement's
    batches counted, the check adds only its central differences' forwards (two per term at ε when
    it passes there), no train forward with a graph and no backward."""
    from alignguard.checks.gradients.losses import LossCheck

    context = context_for(**{"gradients.batches": 2})
    forwards = {"graph": 0, "no_grad": 0}
    context.model.register_forward_hook(
        lambda module, args, out: forwards.__setitem__("graph" if torch.is_grad_enabled() else "no_grad",
                                                      forwards["graph" if torch.is_grad_enabled() else "no_grad"] + 1))
    list(LossCheck().run(context))  # the measurement: one forward with a graph per batch, descent inside it
    measured = dict(forwards)
    results = {r.element: r for r in LossDescentCheck().run(context)}
    assert forwards == measured  # the check itself ran nothing more
    assert measured["graph"] == 2  # 2 batches, both steps (0 and 5) from the same forwards
    assert results and all(r.status is Status.PASS for r in results.values())
    assert {r.details["direction"] for r in results.values()} == {"shared"}
    # θ ± εd per ε, one pair for both terms (bce at step 0, kl at step 5: `loss_terms` at both on one forward)
    assert measured["no_grad"] == 2 * max(len(r.details["ratios"]) for r in results.values())


def no_grad_forwards(context):
    calls = []
    context.model.register_forward_hook(lambda *_: calls.append(1) if not torch.is_grad_enabled() else None)
    return calls


def test_a_term_that_reads_no_output_is_measured_without_forwards():
    """An L2 over the weights reads no output of forward (issue 20: 0.3 s a call on a 52 M-weight CNN):
    its central differences call `loss_terms` on the first batch's outputs, not the model."""
    context = context_for(**{"entry_points.loss_terms": "decay_terms"})
    calls = no_grad_forwards(context)
    results = {r.element: r for r in LossDescentCheck().run(context)}
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values()]
    assert results["loss l2"].details["ratio"] == pytest.approx(1.0, abs=0.01)
    assert {r.details["direction"] for r in results.values()} == {"shared"}
    assert len(calls) == 2  # θ ± εd for all three terms: l2 adds no forward (nor a `loss_terms` call)


def test_a_reversed_term_that_reads_no_output_still_fails():
    results = descent("reversed_decay_terms")
    assert results["loss l2"].failed and results["loss l2"].details["ratio"] == pytest.approx(-1.0, abs=0.01)
    assert results["loss bce"].status is Status.PASS


def test_a_term_forward_leaves_on_the_module_is_measured_with_forwards():
    """`model.aux_loss` reads no output but changes with θ through forward: measured without forwards it
    would not move (ratio 0); the miss sends it back to forwards, where it passes."""
    results = descent("aux_terms")
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values()]
    assert results["loss aux"].details["ratio"] == pytest.approx(1.0, abs=0.01)


def random_pieces(generator, sizes, missing=()):
    return [None if index in missing else torch.randn(size, generator=generator, dtype=torch.float64).float()
            for index, size in enumerate(sizes)]


def shared_direction(terms):
    """(d per parameter, whether each term's weights solved exactly) from `shared_weights`."""
    from alignguard.checks.gradients.shared_direction import shared_weights
    from alignguard.gradients.measure import gram_blocks

    weights, misfit = shared_weights(gram_blocks(terms, len(terms[0])))
    d = [sum(float(weights[p, k]) * term[p].double() for k, term in enumerate(terms) if term[p] is not None)
         for p in range(len(terms[0]))]
    return d, misfit


def test_the_shared_direction_weighs_every_parameter_as_each_terms_own_gradient():
    """g_kp·d_p = |g_kp|²/|g_k| for every term k and parameter p, parameters where a term has no
    gradient included: so a gradient wrong by a factor on any set of parameters (a reversal layer
    upstream of some modules) gives the same ratio along d as along the term's own gradient."""
    generator = torch.Generator().manual_seed(0)
    sizes = [50, 7, 300, 3]
    terms = [random_pieces(generator, sizes), random_pieces(generator, sizes, missing={1}),
             random_pieces(generator, sizes, missing={0, 3})]
    d, misfit = shared_direction(terms)
    assert max(misfit) < 1e-12
    for term in terms:
        norm = sum(float(g.double() @ g.double()) for g in term if g is not None) ** 0.5
        for g, piece in zip(term, d):
            if g is not None:
                assert float(g.double() @ piece) == pytest.approx(float(g.double() @ g.double()) / norm, rel=1e-9)
    # a per-parameter factor s_p between the true gradient and autograd's: the ratio (true·d)/(g·d)
    # along d equals the ratio along ĝ, whatever the factors
    for factors in ([-1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 3.0, 0.0], [0.5, 0.5, -2.0, 1.0]):
        for term in terms:
            own = sum(s * float(g.double() @ g.double()) for s, g in zip(factors, term) if g is not None)
            own /= sum(float(g.double() @ g.double()) for g in term if g is not None)
            along = sum(s * float(g.double() @ piece) for s, g, piece in zip(factors, term, d) if g is not None)
            along /= sum(float(g.double() @ piece) for g, piece in zip(term, d) if g is not None)
            assert along == pytest.approx(own, rel=1e-9)


def test_terms_whose_gradients_on_a_parameter_cannot_be_weighed_apart_are_judged_alone():
    """Two terms proportional on one parameter in a ratio their norms do not have: no d gives both
    their own weights there (a misfit), so the worse fit is left out; the two left share d exactly.
    (A one-element bias makes every pair proportional there: the misfit measures what that costs.)"""
    from alignguard.checks.gradients.descent import LossDescentCheck

    generator = torch.Generator().manual_seed(1)
    sizes = [40, 40]
    first = random_pieces(generator, sizes)
    second = [2 * first[0], torch.randn(40, generator=generator, dtype=torch.float64).float() * 10]
    third = random_pieces(generator, sizes)
    _, misfit = shared_direction([first, second, third])
    assert min(misfit[:2]) > 0.01
    context = context_for()
    params = [torch.nn.Parameter(torch.zeros(n)) for n in sizes]
    entries = [(name, 0, pieces, 1.0, 1e-7, False) for name, pieces in zip("abc", (first, second, third))]
    kept = shared_group(context, params, entries)
    assert kept is not None and len(kept[0]) == 2 and 2 in kept[0]


def test_a_term_that_declares_parameters_out_is_judged_along_its_own_gradient():
    """`reversed_on` parameters would move along the shared direction: that term keeps its own."""
    results = descent("domain_terms", **{"components.encoder": {"module": "encoder"},
                                         "losses.domain": {"min_share": -1.0, "reversed_on": ["encoder"]}})
    assert results["loss domain"].details["direction"] == "own"
    assert {results[f"loss {name}"].details["direction"] for name in ("bce", "kl")} == {"shared"}
