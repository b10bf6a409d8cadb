"""The outcome of one `alignguard check` run, independent of how it is rendered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from alignguard.checks.base import CheckResult, Status
from alignguard.errors import ExitCode

FailOn = Literal["error", "warning"]


@dataclass
class Report:
    spec_name: str
    spec_path: str
    model_path: str
    results: list[CheckResult]
    capture: str = ""
    capture_note: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counter = Counter(r.status.value for r in self.results)
        return {status.value: counter.get(status.value, 0) for status in Status}

    def findings(self, fail_on: FailOn = "error") -> list[CheckResult]:
        """Failures that count against the model at this threshold."""
        levels = {"error"} if fail_on == "error" else {"error", "warning"}
        return [r for r in self.results if r.status is Status.FAIL and r.severity in levels]

    def exit_code(self, fail_on: FailOn = "error") -> ExitCode:
        if any(r.status is Status.ERROR for r in self.results):
            return ExitCode.USAGE
        if not self.results:
            return ExitCode.USAGE  # a spec that checks nothing proves nothing
        return ExitCode.FINDINGS if self.findings(fail_on) else ExitCode.OK

    def aligned(self, fail_on: FailOn = "error") -> bool:
        return self.exit_code(fail_on) is ExitCode.OK
