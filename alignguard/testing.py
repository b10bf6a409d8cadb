"""Gate alignment inside a project's own test suite.

    from alignguard.testing import assert_aligned

    def test_model_implements_design():
        assert_aligned("specs/cmdn.yaml", "models/cmdn.py")

A misaligned model raises AssertionError whose message lists every finding (check, element,
expected, found, where, fix), so the pytest output alone says what to change. Input the tool
cannot judge (a bad spec, a model file that does not import) raises the AlignguardError that
says why, which pytest reports as an error rather than a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alignguard.results import Status
from alignguard.results import FailOn, Report

if TYPE_CHECKING:
    from alignguard.spec.model import Spec


def assert_aligned(spec: "Spec | str | Path", model_path: str | Path, fail_on: FailOn = "error") -> Report:
    """Check `model_path` against `spec`; return the report when aligned, else raise AssertionError."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    from alignguard.api import check

    report = check(spec, model_path)
    if not report.aligned(fail_on):
        raise AssertionError(failure_message(report, fail_on))
    return report


def failure_message(report: Report, fail_on: FailOn = "error") -> str:
    problems = report.findings(fail_on) + [r for r in report.results if r.status is Status.ERROR]
    count = len(problems)
    lines = [f"{report.model_path} does not implement spec '{report.spec_name}' ({report.spec_path}): "
             f"{count} finding{'s' if count != 1 else ''} at --fail-on {fail_on}"]
    if not report.results:
        lines.append("  the spec selects no check, so it proves nothing: add components, flow, formulas or losses")
    for result in problems:
        lines.extend(result.outline(f"{result.check_id} [{result.element}]"))
    lines.append("run `alignguard check` for the full report, `alignguard explain CHECK_ID` for a check")
    return "\n".join(lines)
