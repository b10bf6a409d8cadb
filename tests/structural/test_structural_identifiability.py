"""identifiability: the formula's symmetries, the gauges the implementation leaves free, and their
confirmation on the real model; plus the symmetry search on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from identifiability_zoo import LeakyEncoderCMDN, cmdn, example_batch, whole_context_cmdn
from structural_helpers import run_checks

from alignguard.results import Status
from alignguard.spec.formula import FUNCTIONS, parse_equation
from alignguard.spec.loader import load_spec
from alignguard.spec.symmetry import find_symmetries

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "cmdn.yaml"


def identifiability(model, spec=None):
    return run_checks(model, "identifiability", spec=spec or load_spec(SPEC), batch_fn=example_batch)


def gauge(results, moved):
    chosen = [r for r in results if r.details.get("moved") == moved]
    assert len(chosen) == 1, [(r.details.get("moved"), r.found) for r in results]
    return chosen[0]


def test_symmetries_of_the_cmdn_formula():
    found = {s.describe(""): s for s in find_symmetries(parse_equation("logit = (M * U_I + B) / T").rhs)}
    assert set(found) == {"(M, B, T) -> k·(M, B, T)", "(U_I, B, T) -> k·(U_I, B, T)", "(k·M, k^-1·U_I)",
                          "(U_I+δ, B−M·δ)", "(M+δ, B−U_I·δ)"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_formula_function_can_be_analysed(function):
    # the symmetry search evaluates the formula itself, so every function the parser admits must evaluate
    args = "a, b" if function == "logsumexp" else "a"
    assert isinstance(find_symmetries(parse_equation(f"y = {function}({args})").rhs), list)


def test_a_logsumexp_of_two_terms_has_no_shift_of_one_alone():
    found = [s.describe("") for s in find_symmetries(parse_equation("y = logsumexp(a, b)").rhs)]
    assert not any("a+δ" in text and "b" not in text for text in found)


def test_symmetries_of_the_legacy_head_and_of_a_formula_without_any():
    found = {s.describe("") for s in find_symmetries(parse_equation("logit = (U_I - R_E) / T").rhs)}
    assert found == {"(U_I+δ, R_E+δ)", "(U_I, R_E, T) -> k·(U_I, R_E, T)"}
    assert find_symmetries(parse_equation("y = exp(a) + b * b").rhs) == []


def test_a_log_scale_shift_is_found_and_flows_exactly():
    import torch

    (shift,) = find_symmetries(parse_equation("y = exp(a) * b").rhs)
    assert shift.describe("") == "(a+δ, e^(−δ)·b)" and not shift.is_scaling and not shift.is_shift
    values = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([2.0, 3.0])}
    moved = shift.flow(values, torch.tensor([0.5, -1.0]))
    assert torch.allclose(torch.exp(moved["a"]) * moved["b"], torch.exp(values["a"]) * values["b"])
    # inside a function, and never reported again as what an earlier family found
    assert [s.describe("") for s in find_symmetries(parse_equation("p = sigmoid(exp(a) * b + c)").rhs)] == [
        "(a+δ, e^(−δ)·b)"]
    assert find_symmetries(parse_equation("y = softplus(a) * b").rhs) == []


def test_the_flow_is_the_finite_symmetry():
    import torch

    (shift,) = [s for s in find_symmetries(parse_equation("logit = (M * U_I + B) / T").rhs)
                if s.support == ("U_I", "B")]
    values = {"U_I": torch.tensor([1.0, 2.0]), "B": torch.tensor([0.5, 0.0]), "M": torch.tensor([2.0, 3.0])}
    moved = shift.flow(values, torch.tensor([0.5, -1.0]))
    assert torch.allclose(moved["U_I"], torch.tensor([1.5, 1.0]))
    assert torch.allclose(moved["B"], torch.tensor([-0.5, 3.0]))


def test_the_whole_context_modulator_leaves_a_gauge_that_depends_on_c():
    results = identifiability(whole_context_cmdn())
    scale = gauge(results, ["M", "B", "T"])
    assert scale.status is Status.FAIL
    assert "M, B and T are determined only up to k(c)" in scale.found
    assert "(M, B, T) -> k(c)·(M, B, T) predicts the same" in scale.found
    assert scale.details["confirmed"] is True and "varying by example" in scale.details["evidence"]
    assert "flow.forbidden" in scale.fix
    # The other gauges stay constant: U_I never sees c.
    assert gauge(results, ["U_I", "B"]).status is Status.PASS


def test_the_reference_cmdn_leaves_only_global_gauges():
    results = identifiability(cmdn.build_model())
    assert results and all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    scale = gauge(results, ["M", "B", "T"])
    assert scale.found.startswith("note: a global constant gauge only, (M, B, T) -> k·(M, B, T)")
    assert scale.details["gauge_inputs"] == [] and scale.details["confirmed"] is True
    assert scale.details["dependencies"]["M"] == ["descriptor"]
    assert scale.details["dependencies"]["T"] == ["accessibility"]
    shift = gauge(results, ["U_I", "B"])
    assert "(U_I+δ, B−M·δ)" in shift.found
    # (M+δ, B−U_I·δ) would need B to see x: not available, so not reported as a gauge.
    assert any("(M+δ, B−U_I·δ)" in text for text in scale.details["broken_by_dependencies"])


def test_a_compensated_shift_with_an_input_dependent_gauge():
    results = identifiability(LeakyEncoderCMDN())
    shift = gauge(results, ["U_I", "B"])
    assert shift.status is Status.FAIL
    assert "U_I and B are determined only up to δ(descriptor)" in shift.found
    assert "(U_I+δ(descriptor), B−M·δ(descriptor))" in shift.found
    assert shift.details["confirmed"] is True


def test_identifiable_fails_on_a_global_gauge():
    text = SPEC.read_text().replace("severity: {}", "identifiable: [T]\nseverity: {}")
    results = identifiability(cmdn.build_model(), spec=text)
    scale = gauge(results, ["M", "B", "T"])
    assert scale.status is Status.FAIL
    assert "T is determined only up to a global constant" in scale.found
    assert gauge(results, ["U_I", "B"]).status is Status.PASS  # T does not move there


def legacy_checks(model):
    return run_checks(model, "identifiability", "pattern.forbidden", spec=load_spec(SPEC), batch_fn=example_batch)


def test_the_legacy_head_is_reported_once_as_the_forbidden_additive_mix():
    legacy = pytest.importorskip("identifiability_zoo").load_reference("legacy_energy.py")
    results = legacy_checks(legacy.build_model())
    findings = [r for r in results if r.failed]
    assert [r.check_id for r in findings] == ["pattern.forbidden"], [(r.check_id, r.found) for r in findings]
    assert "(U_I+δ, R_E+δ) gives the same prediction" in findings[0].found
    shift = gauge([r for r in results if r.check_id == "identifiability"], ["U_I", "R_E"])
    assert shift.status is Status.PASS and shift.element == "formula logit (as implemented)"
    assert "logit = (U_I - R_E) / T is translation-symmetric, (U_I+δ, R_E+δ)" in shift.found
    assert "reported once, by pattern.forbidden" in shift.found and shift.details["confirmed"] is True
    assert gauge(results, ["U_I", "R_E", "T"]).status is Status.PASS  # a global scale: a note


def test_a_translation_the_pattern_scan_cannot_see_is_identifiabilitys_finding():
    import torch

    legacy = pytest.importorskip("identifiability_zoo").load_reference("legacy_energy.py")

    class RatioHead(torch.nn.Module):  # log(e^U_I / e^R_E) / T: the same shift, with no add/sub to find
        def __init__(self):
            super().__init__()
            self.inner = legacy.build_model()

        def forward(self, x, c):
            out = dict(self.inner(x, c))
            out["logit"] = torch.log(torch.exp(out["U_I"]) / torch.exp(out["R_E"])) / out["T"]
            return out

    results = legacy_checks(RatioHead())
    assert [r.status for r in results if r.check_id == "pattern.forbidden"] == [Status.PASS]
    shift = gauge([r for r in results if r.check_id == "identifiability"], ["U_I", "R_E"])
    assert shift.status is Status.FAIL and "translation_symmetric_head" in shift.expected
    assert "(U_I+δ, R_E+δ) gives the same prediction" in shift.found and shift.details["confirmed"] is True


@pytest.mark.slow
def test_a_model_that_breaks_the_formulas_symmetry_is_not_reported():
    import torch

    class Reads(torch.nn.Module):  # T also enters the logit outside the formula
        def __init__(self):
            super().__init__()
            self.inner = cmdn.build_model()

        def forward(self, x, c):
            out = dict(self.inner(x, c))
            out["logit"] = out["logit"] + 0.5 * out["T"]
            return out

    results = identifiability(Reads())
    assert all(r.details.get("confirmed") is not True for r in results if "T" in r.details.get("moved", []))


PARTLESS = """version: 1
name: partless
inputs:
  x: {role: invariant}
  c: {role: context}
symbols: {U_I: U_I, M: M, B: B, T: T, logit: logit}
formulas:
  - equation: logit = (M * U_I + B) / T
"""


def test_a_spec_without_parts_sees_the_slices_forward_reads():
    # What `init` writes names no parts of c. The reference model reads c[:, :-1] into M and c[:, -1:] into
    # T, so no k(c) can rescale both: the gauge is a constant, found from the slices alone.
    from alignguard.spec.loader import parse_spec

    results = identifiability(cmdn.build_model(), parse_spec(PARTLESS))
    assert results and all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    scale = gauge(results, ["M", "B", "T"])
    assert scale.details["gauge_inputs"] == []
    assert scale.details["dependencies"]["M"] == ["c[:, :-1]"] and scale.details["dependencies"]["T"] == ["c[:, -1:]"]


def test_a_modulator_reading_c_whole_still_leaves_k_of_c_without_parts():
    from alignguard.spec.loader import parse_spec

    scale = gauge(identifiability(whole_context_cmdn(), parse_spec(PARTLESS)), ["M", "B", "T"])
    assert scale.status is Status.FAIL and "determined only up to k(c)" in scale.found
