"""component.effect on purpose-built models (tests/probes/models/effect_models.py): a frozen module
bypassed fails, a correct frozen module passes, and the idioms that hide an effect at the point a
model is built (a zero-initialised head, an argmin index) do not false-alarm."""

import torch

from alignguard.checks.catalogue import explanation
from alignguard.checks.context import CheckContext
from alignguard.checks.probes.effect import ComponentEffectCheck
from alignguard.modelfile.loader import load_model_file
from alignguard.results import Status
from alignguard.spec.model import Spec

from probe_helpers import HERE

MODEL = HERE / "models" / "effect_models.py"
BRANCHES = {"online": {"module": "online", "reaches": ["p", "y"]},
            "target": {"module": "target", "reaches": ["t", "y"]},
            "head": {"module": "head", "reaches": ["y"]}}


def effect(builder: str, components: dict = BRANCHES, symbols=("p", "t", "y")):
    spec = Spec.model_validate({
        "version": 1, "name": "effect", "entry_points": {"batch_size": 8, "build_model": builder},
        "inputs": {"x": {"role": "other"}}, "symbols": {s: s for s in symbols}, "components": components})
    model_file = load_model_file(MODEL, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    before = {k: v.clone() for k, v in context.model.state_dict().items()}
    results = list(ComponentEffectCheck().run(context))
    after = context.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the check must restore every parameter"
    assert "capture" not in context._memo, "a probe must not need the traced graph"
    return {(r.element.removeprefix("component "), r.expected.rsplit(" ", 1)[-1]): r for r in results}


def test_correct_frozen_module_under_no_grad_passes():
    results = effect("build_model")
    assert len(results) == 5 and all(r.status is Status.PASS for r in results.values()), \
        [r.found for r in results.values() if r.failed]
    assert results[("target", "t")].details["moved_in"] == "eval mode, as built"
    import importlib.util

    loaded = importlib.util.spec_from_file_location("effect_models", MODEL)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    assert not any(p.requires_grad for p in module.build_model().target.parameters())  # really frozen


def test_bypassed_frozen_module_fails_naming_the_symbol():
    results = effect("build_bypassed")
    for symbol in ("t", "y"):
        result = results[("target", symbol)]
        assert result.failed, result.found
        assert f"{symbol} did not move" in result.found and "bypassed" in result.found
        assert "'target'" in result.fix and "components.target.reaches" in result.fix
        assert result.where.module == "target"
    assert results[("online", "p")].status is Status.PASS


def test_frozen_state_held_in_persistent_buffers_is_perturbed_too():
    assert all(r.status is Status.PASS for r in effect("build_buffers").values())
    results = effect("build_buffers_bypassed")
    assert results[("target", "t")].failed and "the parameters of 'target'" in results[("target", "t")].found


def test_zero_initialised_head_does_not_hide_the_upstream_components():
    results = effect("build_zero_head")
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values() if r.failed]
    # as built, the zero head multiplies online's and target's effect on y by 0: found at a nearby point
    assert "generic nearby point" in results[("online", "y")].details["moved_in"]
    assert "generic nearby point" in results[("online", "y")].found
    assert results[("head", "y")].details["moved_in"] == "eval mode, as built"  # its zero weights move (the floor)


def test_an_index_symbol_reached_through_argmin_passes():
    results = effect("build_indexed", {"encoder": {"module": "encoder", "reaches": ["index", "z_q"]}},
                     symbols=("index", "z_q"))
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values() if r.failed]


def test_a_parameter_free_component_has_its_output_perturbed():
    components = {"squash": {"module": "squash", "reaches": ["y"]}}
    (used,) = effect("build_squashed", components, symbols=("y",)).values()
    assert used.status is Status.PASS and "the output of 'squash'" in used.expected
    (discarded,) = effect("build_squashed_discarded", components, symbols=("y",)).values()
    assert discarded.failed and "y did not move" in discarded.found


def test_explained():
    text = explanation("component.effect")
    assert "frozen" in text and "zero-initialised" in text and "Fix:" in text


def test_a_symbol_only_train_mode_returns_is_judged_in_train_mode():
    results = effect("build_auxiliary", {"aux": {"module": "aux", "reaches": ["a"]}}, symbols=("h", "a"))
    assert [r.status for r in results.values()] == [Status.PASS], [r.found for r in results.values()]


def test_calls_that_do_not_hold_the_perturbed_component_are_replayed():
    """`online(x)` takes a forward input only: it is recorded once and replayed while target and head
    are perturbed, and runs again only while online itself is (hold=), with its noisy parameters."""
    spec = Spec.model_validate({
        "version": 1, "name": "effect", "entry_points": {"batch_size": 8},
        "inputs": {"x": {"role": "other"}}, "symbols": {s: s for s in ("p", "t", "y")}, "components": BRANCHES})
    model_file = load_model_file(MODEL, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    calls, online = [], context.model.online
    compute = online.forward

    def counted(*args):  # a replayed call returns its recording in place of forward: not counted
        calls.append(1)
        return compute(*args)
    online.forward = counted
    results = list(ComponentEffectCheck().run(context))
    assert all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    assert len(calls) == 2, "captured as built, then run only while its own parameters are perturbed"


def test_a_noise_scale_that_reaches_the_sample_only_in_train_mode_passes_there():
    spec_components = {"scale": {"module": "scale_head", "reaches": ["z"]}}
    spec = Spec.model_validate({
        "version": 1, "name": "effect", "entry_points": {"batch_size": 8, "build_model": "build_sampled"},
        "inputs": {"x": {"role": "other"}}, "symbols": {"z": "z"}, "components": spec_components})
    model_file = load_model_file(MODEL, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    running = context.model.bn.running_mean.clone()
    (result,) = ComponentEffectCheck().run(context)
    assert result.status is Status.PASS and result.details["moved_in"] == "train mode, as built", result.found
    assert torch.equal(context.model.bn.running_mean, running), "train-mode runs keep the running statistics"


def _context(builder: str = "build_model", components: dict = BRANCHES, symbols=("p", "t", "y")) -> CheckContext:
    spec = Spec.model_validate({
        "version": 1, "name": "effect", "entry_points": {"batch_size": 8, "build_model": builder},
        "inputs": {"x": {"role": "other"}}, "symbols": {s: s for s in symbols}, "components": components})
    model_file = load_model_file(MODEL, spec.entry_points)
    return CheckContext(spec=spec, model_file=model_file, model=model_file.build())


def test_the_unperturbed_values_are_read_once_for_every_component():
    """Three components with three different `reaches`: one run as built (the capture), one confirming
    the capture, then one run per component; each component's own read cost three runs before."""
    context = _context()
    runs = []
    context.model.register_forward_pre_hook(lambda module, args: runs.append(1))
    results = list(ComponentEffectCheck().run(context))
    assert all(r.status is Status.PASS for r in results), [r.found for r in results if r.failed]
    assert len(runs) == 2 + len(BRANCHES)


def test_a_symbol_only_train_mode_returns_does_not_stop_the_others_being_read_in_eval():
    """The joint read as built fails in eval (forward returns no 'a' there): each component reads its own."""
    results = effect("build_auxiliary", {"encoder": {"module": "encoder", "reaches": ["h"]},
                                         "aux": {"module": "aux", "reaches": ["a"]}}, symbols=("h", "a"))
    assert all(r.status is Status.PASS for r in results.values()), [r.found for r in results.values()]
    assert results[("encoder", "h")].details["moved_in"] == "eval mode, as built"
    assert results[("aux", "a")].details["moved_in"] == "train mode, as built"


def test_a_bypassed_component_still_fails_by_name_beside_correct_ones_read_together():
    results = effect("build_bypassed")
    failing = {key for key, r in results.items() if r.failed}
    assert failing == {("target", "t"), ("target", "y")}, failing


def test_noise_has_the_tensors_scale_and_each_tensor_its_own_draw():
    from alignguard.checks.probes.effect import FLOOR, RELATIVE, _noise

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(400, 300) * 3.0
    moved = _noise(weight, RELATIVE, FLOOR, generator)
    assert moved.dtype == weight.dtype
    spread = float((moved - weight).std())
    assert abs(spread / (RELATIVE * float(weight.pow(2).mean().sqrt())) - 1) < 0.02
    zeros_a, zeros_b = torch.zeros(64, 8), torch.zeros(64, 8)
    a, b = _noise(zeros_a, RELATIVE, FLOOR, generator), _noise(zeros_b, RELATIVE, FLOOR, generator)
    assert not torch.equal(a, b), "two zero heads subtracted must not receive identical noise and cancel"
    assert abs(float(a.std()) / FLOOR - 1) < 0.1, "a zero tensor moves by the floor"
    double = _noise(torch.randn(50, dtype=torch.float64), RELATIVE, FLOOR, generator)
    assert double.dtype == torch.float64
    half = _noise(torch.randn(50).bfloat16(), RELATIVE, FLOOR, generator)
    assert half.dtype == torch.bfloat16
    assert _noise(torch.empty(0, 3), RELATIVE, FLOOR, generator).shape == (0, 3)


def test_noise_moves_only_finite_elements():
    from alignguard.checks.probes.effect import FLOOR, RELATIVE, _noise

    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(6, 6).masked_fill(torch.ones(6, 6).triu(1).bool(), float("-inf"))
    moved = _noise(mask, RELATIVE, FLOOR, generator)
    infinite = mask.isinf()
    assert torch.equal(moved[infinite], mask[infinite]) and bool((moved[~infinite] != 0).all())
    huge = torch.full((10,), 1e30)  # its float32 sum of squares overflows; every element is finite
    spread = float((_noise(huge, RELATIVE, FLOOR, generator).double() - huge.double()).std())
    assert 0.5 * RELATIVE * 1e30 < spread < 2 * RELATIVE * 1e30
