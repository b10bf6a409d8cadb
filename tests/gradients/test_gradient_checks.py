"""loss.*, gradient.* and params.dead on purpose-built tiny models, one failure per scenario."""

import pytest

from alignguard.api import run_check
from alignguard.errors import ExitCode, ModelFileError
from alignguard.results import Status
from grad_helpers import GRAD_MODEL, check_results, grad_results, only, spec_with


def statuses(results, check_id):
    return {r.element: r.status for r in only(results, check_id)}


def test_aligned_model_passes_every_gradient_check():
    results = grad_results()
    assert results and all(r.status is Status.PASS for r in results), [r for r in results if r.failed]
    ids = {r.check_id for r in results}
    assert ids == {"loss.present", "loss.alive", "loss.share", "loss.reaches", "loss.descent", "gradient.conflict",
                   "gradient.cancellation", "params.dead"}
    share = only(results, "loss.share", "loss kl")[0]
    assert share.details["step"] == 20 and "cos bce" in share.found  # the table is in the text
    assert set(share.details["terms"]) == {"bce", "kl", "recon"}
    assert sum(t["share"] for t in share.details["terms"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("loss_terms", ["detached_terms", "item_terms"])
def test_detached_loss_fails_alive_share_and_reaches(loss_terms):
    results = grad_results(**{"entry_points.loss_terms": loss_terms})
    alive = only(results, "loss.alive", "loss kl")[0]
    assert alive.failed and "detached" in alive.found and alive.details["status"] == "detached"
    assert only(results, "loss.share", "loss kl")[0].failed
    assert only(results, "loss.reaches", "loss kl")[0].failed
    assert alive.where.file.endswith("grad_models.py") and alive.where.line


def test_zero_weight_at_the_measured_step_says_so():
    # β(step) is 0 before step 10: measuring the KL at step 0 is the mistake the spec's `step` prevents.
    results = grad_results(**{"losses.kl.step": 0, "gradients.step": 0})
    alive = only(results, "loss.alive", "loss kl")[0]
    assert alive.failed and "weight is zero at this step" in alive.found and "step 0" in alive.found
    assert "losses.kl.step" in alive.fix


def test_zero_gradient_with_non_zero_value_is_told_apart():
    alive = only(grad_results(**{"entry_points.loss_terms": "zero_gradient_terms"}), "loss.alive", "loss kl")[0]
    assert alive.failed and "identically 0 although its value is not" in alive.found


def test_nan_loss_is_reported_as_nan():
    results = grad_results(**{"entry_points.loss_terms": "nan_terms"})
    alive = only(results, "loss.alive", "loss kl")[0]
    assert alive.failed and alive.found.startswith("NaN/inf") and "nan" in alive.found
    # The other terms are still measured, without the NaN poisoning them.
    assert only(results, "loss.share", "loss bce")[0].status is Status.PASS


def test_opposite_gradients_conflict_and_cancel():
    spec = spec_with(**{"entry_points.loss_terms": "opposite_terms", "losses.kl": None, "losses.recon": None,
                        "losses.orth": {}, "losses.domain": {}, "gradients.dead_params": False})
    results = check_results(spec)
    conflict = only(results, "gradient.conflict", "losses orth, domain")[0]
    assert conflict.failed and "cos(g_orth, g_domain) = -1.000" in conflict.found
    assert "∇L_orth ≈ −" in conflict.found
    cancellation = only(results, "gradient.cancellation")[0]
    assert cancellation.failed and cancellation.details["net_ratio"] < 0.05
    assert "orth, domain" in cancellation.found and "net/sum" in cancellation.found


def test_kl_that_only_reaches_the_decoder_fails_reaches_bottleneck():
    results = grad_results(**{"entry_points.loss_terms": "decoder_kl_terms"})
    reaches = only(results, "loss.reaches", "loss kl")[0]
    assert reaches.failed and "reaches only: decoder" in reaches.found and reaches.where.module == "bottleneck"
    assert only(results, "loss.alive", "loss kl")[0].status is Status.PASS


@pytest.mark.parametrize("policy,status,severity", [("error", Status.FAIL, "error"),
                                                     ("warning", Status.FAIL, "warning"),
                                                     ("allow", Status.PASS, "error")])
def test_unexpected_terms_follow_the_policy(policy, status, severity):
    results = grad_results(**{"entry_points.loss_terms": "extra_terms", "gradients.unexpected_losses": policy})
    extra = only(results, "loss.present", "loss orth")[0]
    assert extra.status is status and extra.severity == severity and "does not name" in extra.found


def test_missing_loss_matches_nothing_with_a_suggestion():
    results = grad_results(**{"losses.recn": {}})
    missing = only(results, "loss.present", "loss recn")[0]
    assert missing.failed and "matched nothing" in missing.found and "did you mean 'recon'" in missing.found
    assert not only(results, "loss.alive", "loss recn")


def test_share_bounds_both_ways():
    results = grad_results(**{"losses.bce.max_share": 0.5, "losses.recon.min_share": 0.5})
    assert only(results, "loss.share", "loss bce")[0].failed
    low = only(results, "loss.share", "loss recon")[0]
    assert low.failed and "raise the weight of 'recon'" in low.fix


def test_unused_module_is_a_dead_parameter_finding():
    results = grad_results(**{"entry_points.build_model": "build_with_unused"})
    dead = only(results, "params.dead")
    assert [(r.status, r.element) for r in dead] == [(Status.FAIL, "module unused")]
    assert "weight, bias" in dead[0].found and dead[0].details["parameters"] == ["unused.weight", "unused.bias"]


def test_reaches_a_missing_module_matches_nothing():
    results = grad_results(**{"components.decoder.module": "decodr"})
    reaches = only(results, "loss.reaches", "loss recon")[0]
    assert reaches.failed and "matched nothing" in reaches.found and "decoder" in reaches.fix


def test_non_scalar_loss_term_is_a_model_file_error():
    with pytest.raises(ModelFileError, match="'bce' as a tensor of shape \\(12,\\)") as info:
        grad_results(**{"entry_points.loss_terms": "scalar_shape_terms"})
    assert "grad_models.py" in str(info.value) and "mean" in str(info.value)


def test_end_to_end_report_exit_code():
    spec = spec_with(**{"entry_points.loss_terms": "detached_terms"})
    report = run_check(spec, GRAD_MODEL)
    assert report.exit_code() is ExitCode.FINDINGS
    assert any(r.check_id == "loss.alive" and r.failed for r in report.results)
    assert "gradients" in report.timings


def test_loss_terms_raising_is_a_model_file_error_at_its_line():
    with pytest.raises(ModelFileError, match="raising_terms.*step=0.*KeyError") as info:
        grad_results(**{"entry_points.loss_terms": "raising_terms"})
    assert "grad_models.py:" in str(info.value)
