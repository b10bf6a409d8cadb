"""The numerical probes on purpose-built models: each breaks one design property."""

import pytest

from alignguard.results import Status
from probe_helpers import ADDITIVE_SPEC, by_check, built, probe_results, spec_with


def test_design_model_passes_every_probe():
    results = built("build_model")
    assert {r.check_id for r in results} == {"probe.noise", "probe.swap_invariance", "probe.modulation",
                                            "probe.positivity", "probe.translation_symmetry"}
    assert all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    assert len(by_check(results, "probe.noise")) == 2 and len(by_check(results, "probe.swap_invariance")) == 2
    assert by_check(results, "probe.noise")[0].where.module == "bottleneck"


def test_no_noise_in_train_mode_fails():
    train, evaluation = by_check(built("build_no_noise"), "probe.noise")
    assert train.failed and "identical z_I in train mode" in train.found
    assert evaluation.status is Status.PASS


def test_eval_behaviour_follows_the_documented_choice():
    train, evaluation = by_check(built("build_noisy_eval"), "probe.noise")
    assert train.status is Status.PASS and evaluation.failed and "still stochastic" in evaluation.found
    _, documented = by_check(built("build_noisy_eval", **{"probes.noise.eval": "stochastic"}), "probe.noise")
    assert documented.status is Status.PASS
    _, wrong_doc = by_check(built("build_model", **{"probes.noise.eval": "stochastic"}), "probe.noise")
    assert wrong_doc.failed and "deterministic" in wrong_doc.found


def test_context_leaking_into_the_encoder_fails_both_forms():
    values, gradient = by_check(built("build_leaky"), "probe.swap_invariance")
    assert values.failed and "changes with the context" in values.found
    assert gradient.failed and "a path from c reaches z_I" in gradient.found
    assert gradient.details["max_abs_grad"]["train"] > 0 and gradient.details["max_abs_grad"]["eval"] > 0


def test_additive_head_fails_modulation_and_translation_symmetry():
    results = probe_results(spec_with(ADDITIVE_SPEC))
    (modulation,) = by_check(results, "probe.modulation")
    assert modulation.failed and modulation.details["relative_spread"] < 1e-6 and "additive" in modulation.found
    (translation,) = by_check(results, "probe.translation_symmetry")
    assert translation.failed
    assert "U_I - R_E is translation-symmetric: (U_I+δ, R_E+δ) gives the same prediction" in translation.found
    assert "T" in translation.details["skipped"] or "T +" in translation.details["joint_shift"]


def test_translation_with_explicit_partners():
    spec = spec_with(ADDITIVE_SPEC, **{"probes.translation_symmetry.partners": ["T"]})
    (translation,) = by_check(probe_results(spec), "probe.translation_symmetry")
    assert translation.status is Status.PASS and "T" in translation.found


def test_symbols_computed_inline_in_forward_are_shifted_at_their_torch_call():
    results = built("build_inline_energy")
    (translation,) = by_check(results, "probe.translation_symmetry")
    (modulation,) = by_check(results, "probe.modulation")
    assert translation.status is Status.PASS and modulation.status is Status.PASS
    assert translation.where.file.endswith("probe_models.py") and translation.where.line


def test_negative_M_and_overflowing_T_fail_positivity_with_the_context():
    m, t = by_check(built("build_signed_modulator"), "probe.positivity")
    assert m.failed and "(not positive)" in m.found and "std devs out" in m.found
    assert t.failed and "inf (not finite)" in t.found
    assert m.where.module == "modulator"


def test_context_free_temperature_is_positive_everywhere():
    (positivity,) = by_check(probe_results(spec_with(ADDITIVE_SPEC)), "probe.positivity")
    assert positivity.status is Status.PASS and positivity.details["trials"] == 64


@pytest.mark.parametrize("probe,field", [("noise", "symbol"), ("swap_invariance", "symbol"),
                                         ("positivity", "symbols"), ("translation_symmetry", "shift"),
                                         ("modulation", "energy")])
def test_a_symbol_that_resolves_to_nothing_fails(probe, field):
    spec = spec_with(**{"symbols.ghost": {"output": "ghost"},
                        f"probes.{probe}.{field}": ["ghost"] if field == "symbols" else "ghost"})
    results = [r for r in probe_results(spec) if r.check_id == f"probe.{probe}"]
    assert results and all(r.failed for r in results)
    assert any("matched nothing" in r.found or "no key 'ghost'" in r.found for r in results)


def test_a_shift_that_does_not_move_the_output_cannot_pass():
    # logvar is returned but unused in eval mode (z_I = mu): shifting it proves nothing either way.
    spec = spec_with(**{"symbols.logvar": {"output": "logvar"}, "probes.translation_symmetry.shift": "logvar"})
    (translation,) = by_check(probe_results(spec), "probe.translation_symmetry")
    assert translation.failed and "cannot judge" in translation.found


def test_weak_but_real_modulation_is_not_called_additive():
    (modulation,) = by_check(built("build_model", **{"probes.modulation.min_relative_spread": 50.0}), "probe.modulation")
    assert modulation.failed and "depends on the context, but less than the spec's bound" in modulation.found
    assert "additive" not in modulation.found.split(":")[-1]


def test_one_unreadable_positivity_symbol_fails_alone_and_the_other_is_still_judged():
    # Every symbol is sampled in one run; when that run raises, one run per symbol finds the bad binding.
    spec = spec_with(**{"symbols.ghost": {"output": "ghost"}, "probes.positivity.symbols": ["M", "ghost"]})
    m, ghost = by_check(probe_results(spec), "probe.positivity")
    assert m.element == "symbol M" and m.status is Status.PASS and m.details["trials"] == spec.probes.positivity.trials
    assert ghost.failed and "no key 'ghost'" in ghost.found
