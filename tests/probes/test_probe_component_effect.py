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
