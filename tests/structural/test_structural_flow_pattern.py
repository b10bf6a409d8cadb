"""flow.required / flow.forbidden (whole chains, shape-only reads ignored) and pattern.forbidden."""

from __future__ import annotations

import structural_zoo as zoo
import yaml_free_spec
from structural_helpers import one, run_checks

from alignguard.results import Status

FORBID_C_Z = "flow c -> z_I"
REQUIRE_X_LOGIT = "flow x -> z_I -> U_I -> logit"


def flows(model, spec=None):
    return run_checks(model, "flow.required", "flow.forbidden", spec=spec)


def test_design_passes_every_flow_rule():
    results = flows(zoo.MiniCMDN())
    assert len(results) == 5
    assert all(r.status is Status.PASS for r in results), [(r.element, r.found) for r in results]


def test_encoder_seeing_context_reports_the_whole_chain():
    results = flows(zoo.EncoderSeesContext())
    forbidden = one(results, "flow.forbidden", FORBID_C_Z)
    assert forbidden.status is Status.FAIL
    chain = forbidden.details["chains"][0]
    assert chain[0] == "c" and chain[1].startswith("cat")
    assert "c flows into z_I: c → cat" in forbidden.found and "z_I" in forbidden.found.split("→")[-1]
    assert forbidden.where.node.startswith("cat") and forbidden.where.line  # where c first enters
    assert "z_I must be swap-invariant" in forbidden.fix
    encoder_rule = one(results, "flow.forbidden", "flow c -> encoder")
    assert encoder_rule.status is Status.FAIL


def test_shortest_chain_comes_first():
    forbidden = one(flows(zoo.EncoderSeesContext()), "flow.forbidden", FORBID_C_Z)
    lengths = [len(chain) for chain in forbidden.details["chains"]]
    assert lengths == sorted(lengths)


def test_shape_only_reads_are_not_data_flow():
    results = flows(zoo.ShapeOnlyContext())
    assert one(results, "flow.forbidden", FORBID_C_Z).status is Status.PASS


def test_required_path_says_which_hop_breaks():
    required = one(flows(zoo.EnergySkipsBottleneck()), "flow.required", REQUIRE_X_LOGIT)
    assert required.status is Status.FAIL
    assert required.found == "no data-flow path from x -> z_I to U_I"


def test_endpoint_that_matches_nothing_fails():
    spec = yaml_free_spec.replace("encoder: {module: encoder,", "encoder: {module: phi,")
    results = flows(zoo.MiniCMDN(), spec=spec)
    rule = one(results, "flow.forbidden", "flow c -> encoder")
    assert rule.status is Status.FAIL and "matched nothing" in rule.found


def patterns(model, spec=None):
    return one(run_checks(model, "pattern.forbidden", spec=spec), "pattern.forbidden")


def test_multiplicative_head_is_not_flagged():
    for model in (zoo.MiniCMDN(), zoo.Reordered(), zoo.with_bottleneck(zoo.DistributionNoise)()):
        assert patterns(model).status is Status.PASS


def test_subtractive_head_is_translation_symmetric():
    result = patterns(zoo.Subtractive())
    assert result.status is Status.FAIL
    assert result.found.startswith("U_I - B at ") and "(U_I+δ, B+δ) gives the same prediction" in result.found
    assert result.where.file.endswith("structural_zoo.py") and result.where.line


def test_additive_head_is_flagged_with_opposite_shifts():
    result = patterns(zoo.Additive())
    assert result.status is Status.FAIL and "(U_I+δ, B-δ)" in result.found


def test_pattern_operands_may_be_symbols():
    spec = yaml_free_spec.replace("left: x, right: c", "left: U_I, right: B")
    assert patterns(zoo.Subtractive(), spec=spec).status is Status.FAIL
    assert patterns(zoo.WrongGrouping(), spec=spec).status is Status.FAIL  # M * (U_I + B): U_I + B inside


def test_pattern_operand_matching_nothing_fails():
    spec = yaml_free_spec.replace("left: x, right: c", "left: x, right: B").replace("  B: B\n", "  B: {output: b}\n")
    result = patterns(zoo.MiniCMDN(), spec=spec)
    assert result.status is Status.FAIL and "matched nothing" in result.found


def test_components_can_be_waypoints():
    spec = yaml_free_spec.replace("- {from: c, to: M}", "- {from: x, via: [bottleneck, energy], to: logit}")
    required = one(flows(zoo.MiniCMDN(), spec=spec), "flow.required", "flow x -> bottleneck -> energy -> logit")
    assert required.status is Status.PASS
    skipping = one(flows(zoo.EnergySkipsBottleneck(), spec=spec), "flow.required",
                   "flow x -> bottleneck -> energy -> logit")
    assert skipping.status is Status.FAIL and "matched nothing" in skipping.found  # `energy` is never called
