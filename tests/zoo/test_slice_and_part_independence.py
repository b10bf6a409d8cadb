"""Symbols bound to a slice of a tensor (`slice: "[:, :3]"`, chunk as its sugar) and the probe that a
named input part must not affect a symbol (`probe.dependence`, `rule: none` on a part)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo_helpers import REPO, failures, verdicts, zoo_spec

from alignguard.errors import SpecError
from alignguard.spec.model import SliceFitError, Spec, SymbolBinding

MODELS = REPO / "tests" / "zoo" / "models"


def halves_spec(**changes) -> Spec:
    data = {
        "version": 1, "name": "halves", "inputs": {"x": {"role": "invariant"}},
        "symbols": {"mu": {"module": "stats", "slice": "[:, :3]"}, "s": {"module": "stats", "slice": "[:, 3:]"},
                    "std": "std", "z": {"output": "z", "stochastic": {"scale": "s"}}, "logit": "logit"},
        "formulas": [{"equation": "std = softplus(s)"}],
        "losses": {"bce": {"reaches": ["mu", "s"]}},
    }
    data.update(changes)
    return Spec.model_validate(data)


# ---- the binding: one slicing language, chunk as its sugar -----------------------------------------------
def test_slice_and_chunk_take_the_same_elements():
    value = torch.arange(2 * 7.0).reshape(2, 7)
    for i in range(2):
        chunk = SymbolBinding(module="m", chunk=(i, 2)).select(value)
        assert torch.equal(chunk, value.chunk(2, dim=-1)[i])
    assert torch.equal(SymbolBinding(module="m", slice="[:, 4:]").select(value), value.chunk(2, dim=-1)[1])
    assert torch.equal(SymbolBinding(module="m", slice="[..., -1]").select(value), value[:, -1])


def test_splice_changes_only_the_slice_and_keeps_gradients():
    value = torch.randn(3, 6, requires_grad=True)
    binding = SymbolBinding(module="m", slice="[:, 3:]")
    new = torch.zeros(3, 3, requires_grad=True)
    spliced = binding.splice(value, new)
    assert torch.equal(spliced[:, :3], value[:, :3]) and torch.equal(spliced[:, 3:], new)
    spliced.sum().backward()
    assert torch.equal(new.grad, torch.ones(3, 3)) and torch.equal(value.grad[:, :3], torch.ones(3, 3))
    assert not value.grad[:, 3:].any()  # the replaced elements no longer depend on the computed ones


@pytest.mark.parametrize("binding, message", [
    ({"module": "m", "slice": "[:, :, 0]"}, "indexes 3 dimension(s)"),
    ({"module": "m", "slice": "[:, 9]"}, "out of range"),
    ({"module": "m", "slice": "[:, 20:]"}, "selects no element"),
    ({"module": "m", "chunk": [3, 4]}, "fewer than 4 chunks"),
])
def test_a_slice_that_does_not_fit_says_why(binding, message):
    with pytest.raises(SliceFitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SymbolBinding.model_validate(binding).select(torch.zeros(4, 5))


@pytest.mark.parametrize("binding, message", [
    ({"module": "m", "slice": "[:, :3]", "chunk": [0, 2]}, "not both"),
    ({"module": "m", "slice": ":, :3"}, "in brackets"),
    ({"module": "m", "slice": "[:, ::-1]"}, "step"),
    ({"module": "m", "slice": "[:, :]"}, "whole tensor"),
])
def test_bad_slice_text_is_a_spec_error(binding, message):
    with pytest.raises(SpecError, match=message):
        Spec.from_dict({"version": 1, "name": "t", "inputs": {"x": {"role": "invariant"}}, "symbols": {"a": binding}})


def test_runner_edit_of_a_slice_leaves_the_rest_of_the_output():
    from alignguard.probes.runtime import SymbolRunner

    sys.path.insert(0, str(MODELS))
    import slice_halves

    model, inputs = slice_halves.build_model().eval(), {"x": slice_halves.example_batch(4, 0)["x"]}
    runner = SymbolRunner(model, halves_spec().symbols)
    base = runner.run(inputs, observe=["mu", "std"])
    edited = runner.run(inputs, observe=["mu", "std", "s"], edits={"mu": lambda t: t + 1.0})
    assert torch.allclose(edited["mu"], base["mu"] + 1.0)
    assert torch.equal(edited["std"], base["std"])  # the other half, computed from the untouched elements
    both = runner.run(inputs, observe=["mu", "s"], edits={"mu": lambda t: t * 0, "s": lambda t: t * 0 + 2})
    assert not both["mu"].any() and bool((both["s"] == 2).all())


def test_two_slices_of_one_torch_call_result_are_edited_together():
    from alignguard.probes.runtime import SymbolRunner

    class Net(torch.nn.Module):  # `both` is made by a torch call in forward, not returned by a submodule
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x):
            both = self.lin(x) * 2.0
            return {"both": both, "out": both[:, :2].sum(-1) - both[:, 2:].sum(-1)}

    bindings = {name: SymbolBinding(output="both", slice=text) for name, text in (("a", "[:, :2]"), ("b", "[:, 2:]"))}
    bindings["out"] = SymbolBinding(output="out")
    runner, inputs = SymbolRunner(Net().eval(), bindings), {"x": torch.randn(5, 3)}
    assert runner.site("a", inputs, train=False, seed=0).op is not None
    edited = runner.run(inputs, observe=["out"], edits={"a": lambda t: t * 0 + 1.0, "b": lambda t: t * 0})
    assert torch.allclose(edited["out"], torch.full((5,), 2.0))  # both edits landed on the one result


# ---- every check honours the slice ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fx", "eager"])
@pytest.mark.parametrize("model", ["slice_halves.py", "slice_halves_split.py"])
def test_slice_bound_halves_pass_on_the_correct_model(model, method):
    spec = halves_spec(capture={"method": method})
    path = str(MODELS / model)
    for check_id in ("symbol.bound", "formula", "loss.reaches", "noise.reparameterised"):
        assert set(verdicts(spec, path, check_id)) == {"pass"}, check_id


def test_detached_scale_half_fails_the_gradient_rules():
    failed = {r.check_id: r for r in failures(halves_spec(), str(MODELS / "slice_halves_detached.py"))}
    assert "loss.reaches" in failed and "ds" in failed["loss.reaches"].found.replace("/", "")
    assert "noise.reparameterised" in failed


def test_wrong_half_fails_the_formula():
    failed = failures(halves_spec(), str(MODELS / "slice_halves_swapped.py"), "formula")
    assert failed and "std = softplus(s)" in failed[0].expected


def test_a_slice_finds_the_chunk_that_takes_the_same_elements():
    # FiLM's model splits with .chunk(2); HIDDEN = 16, so gamma is columns 0-15 of the generator's output
    spec = zoo_spec("film", "formulas", **{"symbols.gamma": {"module": "film_generator", "slice": "[:, :16]"},
                                           "symbols.beta": {"module": "film_generator", "slice": "[:, 16:]"}})
    assert verdicts(spec, "film/film.py", "formula") == ["pass"]
    assert failures(spec, "film/film_swapped_halves.py", "formula")
    other = zoo_spec("film", **{"symbols.gamma": {"module": "film_generator", "slice": "[:, :8]"}})
    failed = failures(other, "film/film.py", "symbol.bound")
    assert failed and "never takes `[:, :8]`" in failed[0].found


@pytest.mark.parametrize("slice_text, message", [("[:, 40:]", "selects no element"),
                                                 ("[:, :, 0]", "indexes 3 dimension")])
def test_slice_that_does_not_fit_the_model_exits_2_located(tmp_path: Path, slice_text, message):
    text = (REPO / "examples" / "zoo" / "vib" / "spec.yaml").read_text()
    text = text.replace('mu: {module: encoder, slice: "[:, :4]"}', f'mu: {{module: encoder, slice: "{slice_text}"}}')
    assert slice_text in text
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if slice_text in row)
    column = text.splitlines()[line - 1].index("slice:") + 1
    done = subprocess.run([sys.executable, "-m", "alignguard", "check", str(spec),
                           str(REPO / "examples" / "zoo" / "vib" / "vib.py")], capture_output=True, text=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{spec}:{line}:{column}" in done.stderr and message in done.stderr and "Traceback" not in done.stderr


# ---- a named input part must not affect a symbol -----------------------------------------------------------
def parts_spec(*rules) -> Spec:
    return Spec.model_validate({
        "version": 1, "name": "parts",
        "inputs": {"x": {"role": "invariant"},
                   "c": {"role": "context", "parts": {"descriptor": "[:, :-1]", "accessibility": "[:, -1]"}}},
        "symbols": {"M": "M", "B": "B", "logit": "logit"},
        "flow": {"forbidden": [{"from": "accessibility", "to": "M"}]},
        "probes": {"dependence": [{"symbol": s, "input": p, "rule": "none"} for s, p in rules]},
    })


def test_part_that_does_not_reach_the_symbol_passes():
    spec = parts_spec(("M", "accessibility"))
    assert verdicts(spec, str(MODELS / "parts_clean.py"), "probe.dependence") == ["pass"]


def test_part_that_leaks_into_the_symbol_fails_naming_part_symbol_and_change():
    (finding,) = failures(parts_spec(("M", "accessibility")), str(MODELS / "parts_leak.py"), "probe.dependence")
    assert finding.element == "symbol M on accessibility"
    assert "M changes by " in finding.found and "part 'accessibility' = c[:, -1]" in finding.found
    assert finding.details["max_abs_change"] > 1e-3 and "without accessibility" in finding.fix


def test_part_the_symbol_really_reads_fails():
    # B reads the whole of c: the accessibility part moves it
    assert verdicts(parts_spec(("B", "accessibility")), str(MODELS / "parts_clean.py"), "probe.dependence") == ["fail"]


def test_probe_and_forbidden_flow_judge_different_evidence():
    spec = parts_spec(("M", "accessibility"))
    # a zero gate: the graph has the path (the flow fails), the numbers do not move (the probe passes)
    assert verdicts(spec, str(MODELS / "parts_gated.py"), "probe.dependence") == ["pass"]
    assert "fail" in verdicts(spec, str(MODELS / "parts_gated.py"), "flow.forbidden")
    # a leak through Python numbers: no edge in the graph, but M moves
    assert verdicts(spec, str(MODELS / "parts_offgraph.py"), "probe.dependence") == ["fail"]


def test_causal_rule_on_a_part_is_a_spec_error():
    with pytest.raises(SpecError, match="causal rule replaces positions of a whole input"):
        Spec.from_dict({**parts_spec().model_dump(by_alias=True, exclude_defaults=True),
                        "probes": {"dependence": [{"symbol": "M", "input": "accessibility", "rule": "causal"}]}})
