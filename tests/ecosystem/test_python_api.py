"""Specs written in Python: dicts, YAML round-trip, live modules, gate()."""

from __future__ import annotations

import glob

import pytest

import alignguard
from alignguard.errors import ModelFileError, SpecError
from alignguard.gate import MisalignedError, gate
from alignguard.spec.loader import load_spec
from alignguard.spec.model import Spec
from tests.ecosystem.conftest import FIXTURES, MISALIGNED_SPEC

TINY = {"version": 1, "name": "tiny", "inputs": {"x": {"role": "invariant"}, "c": {"role": "context"}},
        "symbols": {"h": "h", "logit": {"output": "logit"}},
        "components": {"encoder": {"module": "encoder", "reaches": ["h", "logit"]},
                       "head": {"module": "head", "reaches": ["logit"]}}}


def tiny_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_fixture_model", FIXTURES / "tiny_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same(a: Spec, b: Spec) -> bool:
    """Equal content (a spec read from YAML also remembers the lines it came from)."""
    return a.model_dump() == b.model_dump()


def test_a_dict_spec_equals_the_yaml_one():
    assert same(Spec.from_dict(TINY), load_spec(FIXTURES / "tiny_spec.yaml"))
    assert same(Spec.model_validate(TINY), Spec.from_dict(TINY))


@pytest.mark.parametrize("path", sorted(glob.glob("specs/*.yaml")) + [str(FIXTURES / "tiny_spec.yaml")])
def test_to_yaml_round_trips(path):
    spec = load_spec(path)
    assert same(Spec.from_yaml(spec.to_yaml()), spec)


def test_a_dict_with_a_misspelled_key_is_one_paragraph_naming_the_key():
    bad = {**TINY, "components": {"encoder": {"modul": "encoder"}}}
    with pytest.raises(SpecError) as raised:
        Spec.from_dict(bad)
    assert str(raised.value).startswith("spec error: unknown key 'modul' in components.encoder. "
                                        "Where: <dict> at components.encoder.modul. Fix: did you mean 'module'?")


def test_check_a_live_module_with_a_dict_spec():
    file = tiny_module()
    report = alignguard.check(TINY, file.build_model(), example_batch=file.example_batch,
                              loss_terms=file.loss_terms)
    assert report.aligned() and report.spec_path == "<dict>"
    assert report.model_path.endswith("tiny_model.py")  # findings point at the class's file
    misaligned = alignguard.check(Spec.from_yaml(MISALIGNED_SPEC), file.build_model(),
                                  example_batch=file.example_batch(32, 0))  # one dict for every seed
    assert [(r.check_id, r.element) for r in misaligned.findings()] == [("component.called", "component side")]


def test_check_a_live_module_needs_an_example_batch_and_rejects_them_with_a_file():
    file = tiny_module()
    with pytest.raises(ModelFileError, match="needs an example batch"):
        alignguard.check(TINY, file.build_model())
    with pytest.raises(alignguard.errors.AlignguardError, match="go with an in-memory model"):
        alignguard.check(TINY, FIXTURES / "tiny_model.py", example_batch={})


def test_gate_returns_the_report_or_raises_with_every_finding():
    file = tiny_module()
    assert gate(TINY, file.build_model(), example_batch=file.example_batch).aligned()
    with pytest.raises(MisalignedError) as raised:
        gate(Spec.from_yaml(MISALIGNED_SPEC), file.build_model(), example_batch=file.example_batch)
    error = raised.value
    assert error.exit_code == 1 and error.report.findings()[0].check_id == "component.called"
    assert "- component.called [component side] (fail)" in str(error)
    assert "fix:      call self.unused in forward" in str(error)


def test_a_report_says_whether_it_passed_and_renders_itself():
    import json as json_module

    file = tiny_module()
    report = alignguard.check(Spec.from_yaml(MISALIGNED_SPEC), file.build_model(), example_batch=file.example_batch)
    assert report.passed is False and [f.check_id for f in report.findings()] == ["component.called"]
    sarif = json_module.loads(report.render("sarif"))
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["component.called"]
    assert report.render("concise").splitlines()[-1].startswith("misaligned: 1 finding")
    assert "component.called" in report.render() and json_module.loads(report.render("json"))["exit_code"] == 1
    assert alignguard.check(TINY, file.build_model(), example_batch=file.example_batch).passed is True
