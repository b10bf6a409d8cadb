"""loss.descent on purpose-built models (tests/gradients/models/descent_models.py) and the reference models."""

import pytest
import torch

from alignguard.checks.base import Status, explanation
from alignguard.checks.context import CheckContext
from alignguard.checks.loss_descent import LossDescentCheck
from alignguard.modelfile.loader import forward_inputs, load_model_file
from grad_helpers import HERE, REPO, spec_with

MODEL = HERE / "models" / "descent_models.py"
SPEC = HERE / "specs" / "descent_spec.yaml"


def context_for(model_path=MODEL, spec_path=SPEC, **changes):
    spec = spec_with(spec_path, **changes)
    torch.manual_seed(0)
    model_file = load_model_file(model_path, spec.entry_points)
    return CheckContext(spec=spec, model_file=model_file, model=model_file.build())


def descent(terms="loss_terms", **changes):
    context = context_for(**{"entry_points.loss_terms": terms, **changes})
    results = list(LossDescentCheck().run(context))
    assert "capture" not in context._memo, "loss.descent must not need the traced graph"
    return {r.element: r for r in results}


def test_honest_terms_descend_despite_large_noise():
    results = descent()
    assert set(results) == {"loss bce", "loss kl"}
    for result in results.values():
        assert result.status is Status.PASS, result.found
        assert result.details["ratio"] == pytest.approx(1.0, abs=0.01)
        assert result.details["slope"] == pytest.approx(result.details["grad_norm"], rel=0.01)
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


def test_reversed_term_gives_minus_one():
    results = descent("reversed_terms")
    kl = results["loss kl"]
    assert kl.failed and kl.details["ratio"] == pytest.approx(-1.0, abs=0.01)
    assert "the gradient is reversed, so minimising the total maximises this term" in kl.found
    assert results["loss bce"].status is Status.PASS


def test_gradient_reversal_inside_a_term_is_named_in_the_seed_words():
    results = descent("domain_terms")
    domain = results["loss domain"]
    assert domain.failed and domain.details["ratio"] < 0.9
    assert "the gradient of L_domain is not the slope of L_domain" in domain.found
    assert "remove the gradient reversal" in domain.fix
    assert results["loss bce"].status is Status.PASS and results["loss kl"].status is Status.PASS


def test_scaled_custom_backward_fails_unless_the_tolerance_allows_it():
    bce = descent("scaled_terms")["loss bce"]
    assert bce.failed and bce.details["ratio"] == pytest.approx(1 / 3, abs=0.01)
    loose = descent("scaled_terms", **{"gradients.descent_tolerance": 0.7})["loss bce"]
    assert loose.status is Status.PASS


def test_straight_through_estimator_fails_by_design():
    quantised = descent("straight_through_terms")["loss quantised"]
    assert quantised.failed and "waive loss.descent" in quantised.fix


def test_epsilon_comes_from_the_spec():
    results = descent(**{"gradients.descent_epsilon": 1e-2})
    assert all(r.details["epsilon"] == 1e-2 and r.status is Status.PASS for r in results.values())


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
