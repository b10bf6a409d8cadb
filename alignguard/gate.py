"""`alignguard.gate(...)`: put the check in front of any training loop (plain, Lightning, Accelerate).

    import alignguard

    alignguard.gate("specs/cmdn.yaml", model=net, example_batch=batch, loss_terms=loss_terms)
    for epoch in range(epochs):   # reached only when the model implements the design
        ...

A misaligned model raises `MisalignedError`, whose message lists every finding; input the tool
cannot judge (a bad spec, an example batch forward rejects) raises the AlignguardError that says
why. Both carry the exit code the CLI would use (1 and 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alignguard.errors import AlignguardError, ExitCode

if TYPE_CHECKING:
    from alignguard.results import FailOn, Report


class MisalignedError(AlignguardError):
    """The model does not implement its design spec; `.report` holds every result."""

    kind = "misaligned"
    exit_code = ExitCode.FINDINGS

    def __init__(self, report: "Report", fail_on: "FailOn" = "error"):
        from alignguard.testing import failure_message

        self.report = report
        self.fail_on = fail_on
        self.exit_code = report.exit_code(fail_on)  # 1 findings; 2 a check crashed or nothing was checked
        self.message = failure_message(report, fail_on)
        super().__init__(self.message, fix="change the model (or the spec) until `alignguard check` passes")

    def paragraph(self) -> str:
        return self.message

    def __reduce__(self):  # picklable across processes (DDP, spawn)
        return (type(self), (self.report, self.fail_on))


def gate(spec: Any, model: Any, *, example_batch: Any = None, loss_terms: Any = None,
         fail_on: "FailOn" = "error") -> "Report":
    """Check `model` against `spec`; return the report when aligned, else raise MisalignedError."""
    from alignguard.api import check

    report = check(spec, model, example_batch=example_batch, loss_terms=loss_terms)
    if not report.aligned(fail_on):
        raise MisalignedError(report, fail_on)
    return report
