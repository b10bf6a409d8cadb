"""formula: logit = (M * U_I + B) / T matched in any spelling, and a readable near-miss otherwise."""

from __future__ import annotations

import pytest
import structural_zoo as zoo
import yaml_free_spec
from structural_helpers import one, run_checks

from alignguard.results import Status


def formula(model):
    return one(run_checks(model, "formula"), "formula")


@pytest.mark.parametrize("model_class", [zoo.MiniCMDN, zoo.Reordered, zoo.Functional, zoo.ThroughViews,
                                         zoo.MethodChain, zoo.with_bottleneck(zoo.DistributionNoise),
                                         zoo.with_bottleneck(zoo.DimBranch)])
def test_design_formula_in_every_spelling(model_class):
    result = formula(model_class())
    assert result.status is Status.PASS, result.found
    assert result.where.file.endswith("structural_zoo.py") and result.where.line


def test_subtractive_head_shows_what_is_computed_instead():
    result = formula(zoo.Subtractive())
    assert result.status is Status.FAIL
    assert "logit = div(sub(U_I, B), T)" in result.found
    assert "matched div(?, T)" in result.found
    assert "not found: add(mul(M, U_I), B): the implementation computes sub(U_I, B) instead" in result.found
    assert result.where.node is not None and result.where.line


def test_wrong_grouping_is_not_accepted():
    result = formula(zoo.WrongGrouping())
    assert result.status is Status.FAIL
    assert "mul(M, add(U_I, B))" in result.found.replace(" ", "").replace(",", ", ") or "add(U_I, B)" in result.found


def test_expression_computed_upstream_of_the_symbol():
    result = formula(zoo.SquashedLogit())
    assert result.status is Status.FAIL
    assert "the design expression is computed at" in result.found and "logit = sigmoid(" in result.found


def test_unbound_operand_symbols_fail_even_when_the_shape_matches():
    spec = yaml_free_spec.replace("  M: M\n", "  M: {module: nowhere}\n")
    result = one(run_checks(zoo.MiniCMDN(), "formula", spec=spec), "formula")
    assert result.status is Status.FAIL and "M are not bound" in result.found


def test_unbound_left_hand_side_matches_nothing():
    spec = yaml_free_spec.replace("  logit: logit\n", "  logit: {output: score}\n")
    result = one(run_checks(zoo.MiniCMDN(), "formula", spec=spec), "formula")
    assert result.status is Status.FAIL and "matched nothing" in result.found


def test_constants_in_formulas():
    spec = yaml_free_spec.replace("logit = (M * U_I + B) / T", "T = softplus(T_raw) + 0.05").replace(
        "  T: T\n", "  T: T\n  T_raw: {module: modulator.t_head}\n")
    result = one(run_checks(zoo.MiniCMDN(), "formula", spec=spec), "formula")
    assert result.status is Status.PASS, result.found
    wrong = spec.replace("+ 0.05", "+ 0.5")
    result = one(run_checks(zoo.MiniCMDN(), "formula", spec=wrong), "formula")
    assert result.status is Status.FAIL and "0.5" in result.found
