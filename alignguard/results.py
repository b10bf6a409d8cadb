"""The result model every room shares: what a check found, and what a whole run found.

checks/ produces `CheckResult`s, api assembles them into a `Report`, report/ renders it, train
and mutate read it. Nothing here imports another alignguard room but `errors`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Literal

from alignguard.errors import AlignguardError, ExitCode, paragraph

FailOn = Literal["error", "warning"]
FAIL_ON_CHOICES: tuple[str, ...] = ("error", "warning")


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    WAIVED = "waived"
    ERROR = "error"  # the check itself could not run: a tool or model error, not a finding


@dataclass(frozen=True)
class Where:
    module: str | None = None  # dotted module path
    node: str | None = None  # graph node id
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.module:
            parts.append(f"module {self.module}")
        if self.node:
            parts.append(f"node {self.node}")
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        return ", ".join(parts)


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    element: str  # the design element it judges, e.g. "component bottleneck", "loss kl"
    status: Status
    expected: str
    found: str
    where: Where = field(default_factory=Where)
    fix: str = ""
    severity: str = "error"
    details: dict[str, Any] = field(default_factory=dict)  # tables, numbers for machine-readable reports
    note: str = ""  # e.g. the waiver's reason
    spec_line: int | None = None  # 1-based line of the judged element in the spec file, when it has one
    seconds: float | None = None  # wall time spent producing this result (JUnit's testcase time); None: unmeasured

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def outline(self, label: str) -> list[str]:
        """The finding as indented lines (`- label (status)`, expected, found, where, fix) for plain-text failures."""
        lines = [f"  - {label} ({self.status.value})", f"      expected: {self.expected}", f"      found:    {self.found}"]
        if str(self.where):
            lines.append(f"      where:    {self.where}")
        if self.fix:
            lines.append(f"      fix:      {self.fix}")
        return lines

    def with_(self, **changes: Any) -> "CheckResult":
        return replace(self, **changes)


def matched_nothing(reason: object) -> str:
    """A finding's text for a rule that found nothing to judge, said once even when the reason says it already."""
    text = str(reason)
    return text if "matched nothing" in text else f"matched nothing: {text}"


def passed(check_id: str, element: str, expected: str, found: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, element, Status.PASS, expected, found, **kw)


def failed(check_id: str, element: str, expected: str, found: str, fix: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, element, Status.FAIL, expected, found, fix=fix, **kw)


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
        return paragraph(self.kind, self.what, self.where, self.fix)


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

    @property
    def passed(self) -> bool:
        """Aligned at the default threshold: every check that counts passed (`aligned("warning")` is stricter)."""
        return self.aligned()

    def render(self, fmt: str = "text", fail_on: FailOn = "error", timings: bool = False) -> str:
        """This report in a --format: text, concise, json, junit, sarif, github or markdown."""
        # the one upward import of results/, declared in pyproject's import-linter contract
        from alignguard.report.formats import get_format
        from alignguard.report.options import RenderOptions

        return get_format(fmt).render(self, RenderOptions(fail_on=fail_on, timings=timings))
