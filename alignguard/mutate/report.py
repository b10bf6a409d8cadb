"""The outcome of a mutation run: one result per mutant, the kill rate, and the JSON form.

Statuses: killed (the check failed, exit 1), survived (the check passed), crashed (the mutant
does not run forward + loss_terms: an invalid mutant, left out of the kill rate), error (the
check could not judge it, exit 2: counted in the kill rate as not killed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from alignguard.errors import ExitCode

MutantStatus = Literal["killed", "survived", "crashed", "error"]
STATUSES: tuple[MutantStatus, ...] = ("killed", "survived", "crashed", "error")
JSON_SCHEMA_VERSION = 1


@dataclass
class Finding:
    check_id: str
    element: str
    found: str


@dataclass
class MutantResult:
    id: str
    operator: str
    target: str
    description: str
    status: MutantStatus
    killed_by: list[str] = field(default_factory=list)  # failing check ids
    findings: list[Finding] = field(default_factory=list)
    suggestion: str = ""  # the spec rule that would catch it (shown for survivors)
    detail: str = ""  # why it crashed or could not be judged
    seconds: float = 0.0


@dataclass
class SkippedOperator:
    operator: str
    reason: str


@dataclass(frozen=True)
class NotApplicable:
    """A mutant an operator found a target for but did not generate: the change would break nothing
    the spec states (an equivalent mutant for this design), and what to state if the design needs it."""

    operator: str
    target: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.operator}:{self.target}"


@dataclass
class MutationReport:
    spec_name: str
    spec_path: str
    model_path: str
    min_kill: float
    results: list[MutantResult] = field(default_factory=list)
    skipped: list[SkippedOperator] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # analysis, baseline, mutants, total

    def counts(self) -> dict[str, int]:
        return {status: sum(r.status == status for r in self.results) for status in STATUSES}

    def judged(self) -> int:
        """Mutants that ran: the kill rate's denominator (crashed mutants are not valid models)."""
        counts = self.counts()
        return counts["killed"] + counts["survived"] + counts["error"]

    def kill_rate(self) -> float | None:
        judged = self.judged()
        return self.counts()["killed"] / judged if judged else None

    def exit_code(self) -> ExitCode:
        rate = self.kill_rate()
        if rate is None:
            return ExitCode.USAGE  # nothing was tested, so nothing is proven
        return ExitCode.FINDINGS if rate < self.min_kill else ExitCode.OK

    def to_dict(self) -> dict:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "spec": {"name": self.spec_name, "path": self.spec_path},
            "model": self.model_path,
            "kill_rate": self.kill_rate(),
            "min_kill": self.min_kill,
            "counts": self.counts(),
            "exit_code": int(self.exit_code()),
            "mutants": [asdict(r) for r in self.results],
            "skipped_operators": [asdict(s) for s in self.skipped],
            "not_applicable": [{"id": n.id, **asdict(n)} for n in self.not_applicable],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
