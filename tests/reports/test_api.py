"""The Python API (`alignguard.check`, `assert_aligned`) and `alignguard explain` for every id."""

from __future__ import annotations

import subprocess
import sys

import pytest

import alignguard
from alignguard.checks.catalogue import all_check_ids
from alignguard.errors import SpecError
from alignguard.results import Status
from alignguard.testing import assert_aligned
from tests.reports.conftest import FIXTURES, MISALIGNED_SPEC


def test_import_alignguard_does_not_import_torch():
    code = "import sys, alignguard; alignguard.Report; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_returns_a_report(write):
    report = alignguard.check(write("spec.yaml", MISALIGNED_SPEC), "model.py")
    assert isinstance(report, alignguard.Report)
    assert not report.aligned() and report.exit_code() == 1
    assert [(r.check_id, r.element) for r in report.results if r.status is Status.FAIL] == [
        ("component.called", "component side")]


def test_assert_aligned_passes_for_an_aligned_model():
    report = alignguard.assert_aligned(FIXTURES / "tiny_spec.yaml", FIXTURES / "tiny_model.py")
    assert report.aligned() and report.counts()["pass"] == len(report.results)


def test_assert_aligned_message_lists_every_finding(write):
    with pytest.raises(AssertionError) as raised:
        assert_aligned(write("spec.yaml", MISALIGNED_SPEC), "model.py")
    message = str(raised.value)
    assert "does not implement spec 'gate'" in message and "1 finding at --fail-on error" in message
    assert "- component.called [component side] (fail)" in message
    assert "expected: 'unused' called in forward" in message
    assert "fix:      call self.unused in forward" in message


def test_assert_aligned_respects_fail_on(write):
    spec = write("spec.yaml", MISALIGNED_SPEC + "severity:\n  component.*: warning\n")
    assert_aligned(spec, "model.py")  # a warning does not fail at the default threshold
    with pytest.raises(AssertionError, match="component.called"):
        assert_aligned(spec, "model.py", fail_on="warning")


def test_assert_aligned_raises_the_input_error_for_a_bad_spec(write):
    with pytest.raises(SpecError, match="logitt"):
        assert_aligned(write("spec.yaml", MISALIGNED_SPEC.replace("[logit]", "[logitt]")), "model.py")


@pytest.mark.parametrize("check_id", all_check_ids())
def test_explain_every_registered_check(cli, check_id):
    result = cli("explain", check_id)
    assert result.exit_code == 0, result.output
    body = result.stdout.split("\n", 2)[2]
    assert len(body) > 80 and "fix" in body.lower(), body  # what it proves and how to fix
