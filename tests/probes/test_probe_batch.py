"""probe.batch_independence and the positivity search on purpose-built models (tests/probes/models/batch_models.py)."""

from pathlib import Path

import pytest

from alignguard.checks.catalogue import explanation
from alignguard.checks.context import CheckContext
from alignguard.checks.probes.batch import BatchIndependenceProbeCheck
from alignguard.checks.probes.positivity import PositivityProbeCheck
from alignguard.modelfile.loader import load_model_file
from alignguard.results import Status
from pydantic import ValidationError

from probe_helpers import HERE, by_check, spec_with

BATCH_MODEL = HERE / "models" / "batch_models.py"
BATCH_SPEC = HERE / "specs" / "batch_spec.yaml"


def run(check, builder="build_model", model: Path = BATCH_MODEL, **changes):
    spec = spec_with(BATCH_SPEC, **{"entry_points.build_model": builder, **changes})
    model_file = load_model_file(model, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    results = list(check().run(context))
    assert "capture" not in context._memo, "probes must not need the traced graph"
    return results


def batch(builder="build_model", **changes):
    return by_check(run(BatchIndependenceProbeCheck, builder, **changes), "probe.batch_independence")


def of(results, symbol, form):
    (result,) = [r for r in results if r.element == f"symbol {symbol}" and r.details.get("form") == form]
    return result


def test_per_example_model_with_batchnorm_in_eval_passes_both_forms():
    results = batch()
    assert len(results) == 8 and all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    assert of(results, "T", "value").details["max_abs_diff"] == {"first half": 0.0, "permuted": 0.0}
    assert of(results, "T", "gradient").details["max_cross_grad"] == {"x": 0.0, "c": 0.0}
    assert of(results, "T", "value").where.module == "modulator"


def test_batch_mean_temperature_fails_and_names_the_leak():
    results = batch("build_mean_temperature")
    value, gradient = of(results, "T", "value"), of(results, "T", "gradient")
    assert value.failed and "changes with the other examples in its batch" in value.found
    assert value.details["max_abs_diff"]["permuted"] < 1e-6 < value.details["max_abs_diff"]["first half"]
    assert gradient.failed and "depends on c of example" in gradient.found and "16/16 examples" in gradient.found
    assert gradient.details["max_cross_grad"]["x"] == 0.0 < gradient.details["max_cross_grad"]["c"]
    assert "dim 0" in gradient.fix
    assert of(results, "logit", "gradient").failed  # T divides the logit
    assert of(results, "M", "gradient").status is Status.PASS and of(results, "B", "value").status is Status.PASS


def test_cumulative_dependence_fails_the_gradient_form_exactly():
    gradient = of(batch("build_cumulative"), "T", "gradient")
    assert gradient.failed and "15/16 examples" in gradient.found  # example 0 sees no other example
    assert gradient.details["pairs"] == 16 * 15 // 2  # i depends on every j < i


def test_batch_statistics_in_eval_fail():
    results = batch("build_batchnorm_in_eval")
    assert of(results, "T", "value").failed and of(results, "T", "gradient").failed


def test_value_form_alone_catches_a_batch_mean():
    results = batch("build_mean_temperature", **{"probes.batch_independence.gradient": False})
    assert {r.details["form"] for r in results} == {"value"} and of(results, "T", "value").failed


def test_zero_dim_symbol_passes_as_a_parameter_and_fails_as_a_batch_statistic():
    assert all(r.status is Status.PASS for r in batch("build_global_temperature"))
    gradient = of(batch("build_batch_temperature"), "T", "gradient")
    assert gradient.failed and "depends on c of example" in gradient.found


def test_symbol_that_is_not_one_row_per_example_fails():
    value = of(batch("build_pooled"), "B", "value")
    assert value.failed and "not one value per example" in value.found


def test_unbound_symbol_fails_alone():
    results = batch(**{"symbols.R_E": "R_E", "probes.batch_independence.symbols": ["R_E", "T"]})
    (unbound,) = [r for r in results if r.element == "symbol R_E"]
    assert unbound.failed and "matched nothing" in unbound.found
    assert all(r.status is Status.PASS for r in results if r.element == "symbol T")


def test_spec_names_only_bound_symbols():
    with pytest.raises(ValidationError, match=r"probe symbol 'nope' is not defined"):
        spec_with(BATCH_SPEC, **{"probes.batch_independence.symbols": ["nope"]})


def test_explanation_says_what_it_proves():
    text = explanation("probe.batch_independence")
    assert "exactly 0" in text and "BatchNorm" in text and "Fix:" in text


# ---- the positivity search ----------------------------------------------------------------
def positivity(builder, **changes):
    return {r.element: r for r in run(PositivityProbeCheck, builder, **changes)}


def box_minimum(scale: float) -> float:
    """min of T = 1 + w·c over |c - mean| <= scale·std per feature (the probe rows' statistics): a corner."""
    model_file = load_model_file(BATCH_MODEL, spec_with(BATCH_SPEC).entry_points)
    model = model_file.module.build_linear_temperature()
    c = model_file.module.example_batch(16, 0)["c"].double()
    w, b = model.t_head.weight.detach().double()[0], float(model.t_head.bias.detach())
    return b + float(w @ c.mean(0)) - scale * float(w.abs() @ c.std(0, unbiased=False))


def test_search_finds_a_negative_temperature_sampling_misses():
    sampled_only = positivity("build_linear_temperature", **{"probes.positivity.search_steps": 0})["symbol T"]
    assert sampled_only.status is Status.PASS and "search_min" not in sampled_only.details
    searched = positivity("build_linear_temperature")["symbol T"]
    assert searched.failed and "found by gradient descent on T" in searched.found
    assert searched.details["violations"] == 0 and searched.details["search_violations"] > 0
    assert box_minimum(100.0) < 0
    assert searched.details["search_min"] == pytest.approx(box_minimum(100.0), abs=1e-4)  # the worst corner
    assert "(100 std devs out)" in searched.found  # projected: never beyond `scale`
    assert searched.details["search_forwards"] < 31  # every row pinned to the corner: stopped at the fixed point


def test_search_respects_the_box():
    # Within 40 std devs even the worst corner keeps T > 0: nothing to find, and nothing beyond the box.
    result = positivity("build_linear_temperature", **{"probes.positivity.scale": 40.0})["symbol T"]
    assert box_minimum(40.0) > 0
    assert result.status is Status.PASS
    assert result.details["search_min"] == pytest.approx(box_minimum(40.0), abs=1e-4)


def test_softplus_head_stays_positive_under_the_search():
    results = positivity("build_softplus_temperature")
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values()]
    assert "descent from the 8 lowest draws" in results["symbol T"].found


def test_search_starts_from_the_lowest_draws_of_every_symbol():
    results = positivity("build_model", **{"probes.positivity.search_starts": 3})
    assert all(r.details["search_starts"] == 3 for r in results.values())
    assert all(r.details["search_min"] <= r.details["min"] for r in results.values())


def test_symbol_random_in_eval_is_left_to_the_gradient_form():
    results = batch("build_noisy_in_eval")
    value, gradient = of(results, "B", "value"), of(results, "B", "gradient")
    assert value.status is Status.PASS and value.details["stochastic"] and "stochastic in eval" in value.found
    assert gradient.status is Status.PASS  # the noise couples no rows
    blind = of(batch("build_noisy_in_eval", **{"probes.batch_independence.gradient": False}), "B", "value")
    assert blind.failed and "nothing to judge it" in blind.found
    assert of(results, "T", "value").details.get("stochastic") is None  # T itself is deterministic


@pytest.mark.parametrize("rows", [2, 5, 16])
def test_partition_cotangents_see_every_pair_of_rows(rows):
    import torch

    from alignguard.checks.probes.batch import _any_cross_rows

    x = torch.randn(rows, 3, requires_grad=True)
    honest = (x * 2).sum(1)
    assert not _any_cross_rows([honest, x.tanh()], [x], rows)
    for i in range(rows):
        for j in range(rows):
            if i != j:  # row i reads row j, and nothing else leaks
                leak = honest + torch.zeros(rows).index_put((torch.tensor([i]),), 1e-6 * x[j, 0])
                assert _any_cross_rows([x.tanh(), leak], [x], rows), (i, j)
