"""Adversarial designs as positive rules (DANN): reversed on the features, plain on the domain classifier,
no waiver; per-pair conflict bounds; a step-dependent forward argument (alpha(p))."""

import math

import pytest

from zoo_helpers import ZOO, failures, results, verdicts, zoo_spec


def test_correct_dann_passes_without_a_waiver():
    spec = zoo_spec("dann", "losses", "gradients")
    assert not spec.waivers
    assert failures(spec, "dann/dann.py") == []
    assert set(verdicts(spec, "dann/dann.py", "gradient.direction")) == {"pass"}
    assert set(verdicts(spec, "dann/dann.py", "loss.descent")) == {"pass"}


@pytest.mark.parametrize("variant, element, says", [
    ("dann_no_reversal", "loss domain on features", "is not reversed"),
    ("dann_reversal_after_head", "loss domain on domain_head", "is reversed"),
    ("dann_frozen_alpha", "loss domain on features", "has no gradient"),
])
def test_broken_reversal_fails_by_name(variant, element, says):
    spec = zoo_spec("dann", "losses", "gradients")
    failed = [r for r in failures(spec, f"dann/{variant}.py", "gradient.direction")]
    assert [r.element for r in failed] == [element]
    assert says in failed[0].found


def test_without_the_rule_the_reversal_is_a_descent_finding():
    spec = zoo_spec("dann", "losses", "gradients", **{"losses.domain.reversed_on": [], "losses.domain.plain_on": []})
    assert "fail" in verdicts(spec, "dann/dann.py", "loss.descent")


def test_pair_bounds_replace_the_global_cosine_bound():
    pair = {"terms": ["label", "domain"], "min_cosine": -1.0, "max_cosine": -0.999}
    spec = zoo_spec("dann", "losses", "gradients", **{"gradients.pairs": [pair], "gradients.min_cosine": 0.999})
    conflict = results(spec, "dann/dann.py", "gradient.conflict")
    assert [r.status.value for r in conflict if r.element == "losses label, domain"] == ["fail"]
    assert "does not oppose" in conflict[0].found
    spec = zoo_spec("dann", "losses", "gradients", **{"gradients.pairs": [{**pair, "max_cosine": 1.0}],
                                                     "gradients.min_cosine": 0.999})
    assert verdicts(spec, "dann/dann.py", "gradient.conflict") == ["pass"]


def test_example_batch_gets_the_step():
    from alignguard.checks.context import CheckContext
    from alignguard.modelfile.loader import load_model_file

    spec = zoo_spec("dann")
    model_file = load_model_file(ZOO / "dann" / "dann.py")
    assert model_file.step_dependent
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    alpha = model_file.module.alpha_schedule
    assert math.isclose(float(context.batch(0, step=2000)["alpha"]), alpha(2000), rel_tol=1e-6)
    assert math.isclose(float(context.batch(0)["alpha"]), alpha(spec.entry_points.step), rel_tol=1e-6)
    assert not load_model_file(ZOO / "vib" / "vib.py").step_dependent
