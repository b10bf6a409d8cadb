"""noise.present / noise.eval on purpose-built bottlenecks: only a live random *call*, scaled by a
learned sigma and reaching z_I, proves the reparameterisation."""

from __future__ import annotations

import pytest
import yaml_free_spec
import structural_zoo as zoo
from structural_helpers import one, run_checks

from alignguard.results import Status

ELEMENT = "component bottleneck"


def noise(model_class):
    results = run_checks(model_class(), "noise.present", "noise.eval")
    return one(results, "noise.present", ELEMENT), one(results, "noise.eval", ELEMENT)


def test_randn_like_passes_both():
    present, evaluated = noise(zoo.MiniCMDN)
    assert present.status is Status.PASS, present.found
    assert "randn" in present.found and "z_I" in present.found and "mul" in present.found
    assert present.where.line is not None and present.where.file.endswith("structural_zoo.py")
    assert evaluated.status is Status.PASS, evaluated.found


def test_fixed_shape_randn_baked_by_fx_is_judged_on_the_eager_capture():
    present, evaluated = noise(zoo.with_bottleneck(zoo.FixedShapeRandn))
    assert present.status is Status.PASS, present.found
    graph = run_checks.context.graph  # fx refuses to bake the draw: the capture itself fell back
    assert graph.capture.startswith("eager") and "random draw ran once while fx traced" in graph.capture_note
    assert evaluated.status is Status.PASS


def test_randn_of_a_traced_shape_is_a_random_call():
    present, _ = noise(zoo.with_bottleneck(zoo.ShapeOfRandn))
    assert present.status is Status.PASS and not present.note


def test_inplace_normal_on_empty_like():
    present, _ = noise(zoo.with_bottleneck(zoo.InplaceNormal))
    assert present.status is Status.PASS, present.found
    assert "normal" in present.found


def test_noise_computed_but_unused_fails():
    present, _ = noise(zoo.with_bottleneck(zoo.UnusedNoise))
    assert present.status is Status.FAIL
    assert "computed but unused" in present.found and "never reaches z_I" in present.found
    assert present.where.line is not None


def test_noise_only_in_eval_fails_both():
    present, evaluated = noise(zoo.with_bottleneck(zoo.EvalOnlyNoise))
    assert present.status is Status.FAIL and "no noise injection" in present.found
    assert evaluated.status is Status.FAIL
    assert "still reaches z_I in eval mode" in evaluated.found and "differ" in evaluated.found


def test_noise_left_on_in_eval_fails_eval_only():
    present, evaluated = noise(zoo.with_bottleneck(zoo.AlwaysNoisy))
    assert present.status is Status.PASS
    assert evaluated.status is Status.FAIL and "randn" in evaluated.found


def test_stochastic_eval_is_honoured():


    results = run_checks(zoo.with_bottleneck(zoo.AlwaysNoisy)(), "noise.eval", spec=yaml_free_spec.with_eval("stochastic"))
    assert one(results, "noise.eval").status is Status.PASS
    results = run_checks(zoo.MiniCMDN(), "noise.eval", spec=yaml_free_spec.with_eval("stochastic"))
    assert one(results, "noise.eval").status is Status.FAIL


def test_constant_scale_is_not_a_learned_sigma():
    present, _ = noise(zoo.with_bottleneck(zoo.ConstantScale))
    assert present.status is Status.FAIL and "without a product with a learned scale" in present.found


def test_fixed_tensor_attribute_is_not_noise():
    present, _ = noise(zoo.with_bottleneck(zoo.FixedTensorNoise))
    assert present.status is Status.FAIL and "fixed tensor 'bottleneck.eps'" in present.found


def test_distribution_rsample_falls_back_and_shows_the_scaled_draw():
    present, evaluated = noise(zoo.with_bottleneck(zoo.DistributionNoise))
    assert present.status is Status.PASS, present.found
    assert "mul" in present.found
    graph = run_checks.context.graph
    assert graph.capture.startswith("eager") and "torch.fx could not trace" in graph.capture_note
    assert evaluated.status is Status.PASS


def test_dropout_is_not_reparameterisation_noise():
    present, evaluated = noise(zoo.with_bottleneck(zoo.DropoutOnly))
    assert present.status is Status.FAIL and "no noise injection" in present.found
    assert evaluated.status is Status.PASS  # nn.Dropout is the identity in eval mode


def test_noise_drawn_outside_the_component():
    present, _ = noise(zoo.NoiseOutside)
    assert present.status is Status.FAIL and "drawn outside 'bottleneck'" in present.found


def test_deterministic_bottleneck_says_z_is_a_function_of_x():
    present, _ = noise(zoo.with_bottleneck(zoo.BottleneckWithoutNoise))
    assert present.status is Status.FAIL
    assert "no noise injection" in present.found and "z_I = f(x) is a deterministic function" in present.found


@pytest.mark.parametrize("symbol_spec", ["z_I: {module: nowhere}"])
def test_unbound_symbol_matches_nothing(symbol_spec):


    results = run_checks(zoo.MiniCMDN(), "noise.present", spec=yaml_free_spec.replace("z_I: z_I", symbol_spec))
    result = one(results, "noise.present")
    assert result.status is Status.FAIL and "matched nothing" in result.found


def test_through_scale_false_accepts_unscaled_noise():
    spec = yaml_free_spec.replace("through_scale: true", "through_scale: false")
    results = run_checks(zoo.with_bottleneck(zoo.ConstantScale)(), "noise.present", spec=spec)
    assert one(results, "noise.present").status is Status.PASS
