"""The outcome of one `alignguard check` run, independent of how it is rendered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from alignguard.checks.base import CheckResult, Status
from alignguard.errors import AlignguardError, ExitCode

FailOn = Literal["error", "warning"]
FAIL_ON_CHOICES: tuple[str, ...] = ("error", "warning")


@dataclass(frozen=True)
class ToolError:
    """Input the tool could not judge (bad spec, model file, capture): reported, not raised,
    so machine-readable outputs still say why the run stopped."""

    kind: str
    what: str
    where: str | None
    fix: str | None
    exit_code: int

    @classmethod
    def from_error(cls, error: AlignguardError) -> "ToolError":
        return cls(error.kind, error.what, error.where, error.fix, int(error.exit_code))

    def paragraph(self) -> str:
        text = f"{self.kind}: {self.what}."
        if self.where:
            text += f" Where: {self.where}."
        if self.fix:
            text += f" Fix: {self.fix.rstrip('.')}."
        return text


@dataclass
class Report:
    spec_name: str
    spec_path: str
    model_path: str
    results: list[CheckResult]
    capture: str = ""
    capture_note: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    error: ToolError | None = None  # set when the run stopped before judging the model

    @classmethod
    def failed_run(cls, error: AlignguardError, spec_path: str, model_path: str) -> "Report":
        return cls(spec_name="", spec_path=spec_path, model_path=model_path, results=[],
                   error=ToolError.from_error(error))

    def counts(self) -> dict[str, int]:
        counter = Counter(r.status.value for r in self.results)
        return {status.value: counter.get(status.value, 0) for status in Status}

    def findings(self, fail_on: FailOn = "error") -> list[CheckResult]:
        """Failures that count against the model at this threshold."""
        return [r for r in self.results if self.counts_against(r, fail_on)]

    def warnings(self, fail_on: FailOn = "error") -> list[CheckResult]:
        """Failures shown but not counted at this threshold (severity warning with --fail-on error)."""
        return [r for r in self.results if r.status is Status.FAIL and not self.counts_against(r, fail_on)]

    @staticmethod
    def counts_against(result: CheckResult, fail_on: FailOn = "error") -> bool:
        levels = {"error"} if fail_on == "error" else {"error", "warning"}
        return result.status is Status.FAIL and result.severity in levels

    def exit_code(self, fail_on: FailOn = "error") -> ExitCode:
        if self.error is not None:
            return ExitCode(self.error.exit_code)
        if any(r.status is Status.ERROR for r in self.results):
            return ExitCode.USAGE
        if not self.results:
            return ExitCode.USAGE  # a spec that checks nothing proves nothing
        return ExitCode.FINDINGS if self.findings(fail_on) else ExitCode.OK

    def verdict(self, fail_on: FailOn = "error") -> str:
        code = self.exit_code(fail_on)
        return {ExitCode.OK: "aligned", ExitCode.FINDINGS: "misaligned"}.get(code, "could not judge")

    def aligned(self, fail_on: FailOn = "error") -> bool:
        return self.exit_code(fail_on) is ExitCode.OK


@dataclass(frozen=True)
class RenderOptions:
    """What every format needs besides the report."""

    fail_on: FailOn = "error"
    timings: bool = False
