"""Bindings by chunk / nested path / plain output; weight constraints, ranges and index-level dependence."""

import pytest

from zoo_helpers import REPO, failures, verdicts, zoo_spec

MODELS = REPO / "tests" / "zoo" / "models"


def test_chunk_binding_finds_swapped_halves():
    spec = zoo_spec("film", "formulas")
    assert verdicts(spec, "film/film.py", "formula") == ["pass"]
    failed = failures(spec, "film/film_swapped_halves.py", "formula")
    assert failed and "chunk(film_generator(c), 2)[1]" in failed[0].found


def test_chunk_that_the_model_never_takes_matches_nothing():
    spec = zoo_spec("film", **{"symbols.gamma": {"module": "film_generator", "chunk": [0, 4]}})
    failed = failures(spec, "film/film.py", "symbol.bound")
    assert failed and "never splits" in failed[0].found


@pytest.mark.parametrize("model, symbols", [("plain_output.py", ["output"]),
                                            ("nested_output.py", ["out_0_0", "out_0_1", "out_1"])])
def test_bindings_init_writes_work_in_probes(model, symbols):
    from alignguard.spec.model import Spec

    bindings = {"output": "output"} if model == "plain_output.py" else {
        "out_0_0": {"output": "0.0"}, "out_0_1": {"output": "0.1"}, "out_1": {"output": "1"}}
    spec = Spec.model_validate({"version": 1, "name": "t", "inputs": {"x": {"role": "invariant"}},
                                "symbols": bindings, "probes": {"batch_independence": {"symbols": symbols}}})
    assert set(verdicts(spec, str(MODELS / model), "probe.batch_independence")) == {"pass"}
    assert set(verdicts(spec, str(MODELS / model), "symbol.bound")) == {"pass"}


@pytest.mark.parametrize("variant", ["basset_no_max_norm", "basset_global_norm"])
def test_max_norm(variant):
    spec = zoo_spec("basset", "weights")
    assert verdicts(spec, "basset/basset.py", "weights.max_norm") == ["pass"]
    failed = failures(spec, f"basset/{variant}.py", "weights.max_norm")
    assert failed and "> 0.9" in failed[0].found


def test_range_with_sum():
    spec = zoo_spec("moe", "ranges")
    assert verdicts(spec, "moe/moe.py", "probe.range") == ["pass"]
    failed = failures(spec, "moe/moe_gate_over_batch.py", "probe.range")
    assert failed and "sums off" in failed[0].found


@pytest.mark.parametrize("variant", ["gpt_no_mask", "gpt_mask_off_by_one"])
def test_causal_dependence(variant):
    spec = zoo_spec("gpt", **{"probes": {"dependence": [{"symbol": "logits", "input": "ids", "rule": "causal"}]}})
    assert verdicts(spec, "gpt/gpt.py", "probe.dependence") == ["pass"]
    failed = failures(spec, f"gpt/{variant}.py", "probe.dependence")
    assert failed and "the future leaks into the past" in failed[0].found


def test_dependence_none_fails_when_the_input_matters():
    spec = zoo_spec("gpt", **{"probes": {"dependence": [{"symbol": "logits", "input": "ids", "rule": "none",
                                                          "trials": 1}]}})
    assert verdicts(spec, "gpt/gpt.py", "probe.dependence") == ["fail"]
