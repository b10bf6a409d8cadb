"""The capture conformance suite: every idiom through both captures, held to the model's own
behaviour (the oracle), and the two captures held to each other (the differential test)."""

from __future__ import annotations

import dataclasses

import oracle
import pytest
import torch
from answers import answers
from idioms import IDIOMS, Idiom

from alignguard.errors import CaptureError
from alignguard.graph.capture import capture_graph

CASES = [pytest.param(idiom, id=idiom.name, marks=[pytest.mark.slow] if idiom.slow else []) for idiom in IDIOMS]


def build(idiom: Idiom):
    torch.manual_seed(idiom.seed)
    return idiom.build()


def expected(idiom: Idiom, answered: dict) -> dict:
    """The idiom's expectations, leaving out the module sets it does not assert."""
    return {key: dataclasses.replace(e, modules=answered[key].modules if e.modules is None and key in answered
                                     else e.modules) for key, e in idiom.expect.items()}


@pytest.mark.parametrize("idiom", CASES)
def test_expectations_are_what_the_model_computes(idiom):
    model, batch = build(idiom), idiom.batch()
    reached = oracle.input_effects(model, batch, idiom.perturb)
    random = oracle.random_outputs(model, batch)
    moved_by = oracle.module_effects(model, batch)
    assert set(oracle.run(model, batch)) == set(idiom.expect)
    for key, e in idiom.expect.items():
        assert {name for name, keys in reached.items() if key in keys} == e.inputs, key
        assert (key in random) == e.random, key
        if e.modules is not None:
            assert {path for path, keys in moved_by.items() if key in keys} == e.modules, key


@pytest.mark.parametrize("idiom", CASES)
def test_eager_recorder_gives_the_expected_answers(idiom):
    graph = capture_graph(build(idiom), idiom.batch(), method="eager")
    got = answers(graph)
    assert got == expected(idiom, got)


@pytest.mark.parametrize("idiom", CASES)
def test_fx_gives_the_expected_answers_or_says_why_not(idiom):
    if idiom.fx == "traces":
        graph = capture_graph(build(idiom), idiom.batch(), method="fx")
        got = answers(graph)
        assert got == expected(idiom, got)
        return
    with pytest.raises(CaptureError) as caught:
        capture_graph(build(idiom), idiom.batch(), method="fx")
    assert "torch.fx could not trace the model" in str(caught.value)
    graph = capture_graph(build(idiom), idiom.batch())  # auto: the fallback, saying why
    assert graph.capture.startswith("eager recorder")
    assert graph.capture_note.startswith("torch.fx could not trace the model")
    assert answers(graph) == expected(idiom, answers(graph))


@pytest.mark.parametrize("idiom", [c for c in CASES if c.values[0].fx == "traces"])
def test_both_captures_agree_where_both_trace(idiom):
    fx_graph = capture_graph(build(idiom), idiom.batch(), method="fx")
    eager_graph = capture_graph(build(idiom), idiom.batch(), method="eager")
    assert answers(fx_graph) == answers(eager_graph)
    assert sorted(fx_graph.outputs) == sorted(eager_graph.outputs)
    assert sorted({c.path for c in fx_graph.module_calls}) == sorted({c.path for c in eager_graph.module_calls})
