"""`alignguard check SPEC MODEL`: exit 0 aligned, 1 misaligned, 2 could not judge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from alignguard.cli.errors import reports_errors


@reports_errors
def check_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML)."),
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    fail_on: str = typer.Option("error", "--fail-on", help="Lowest severity that fails the check: error|warning."),
    timings: bool = typer.Option(False, "--timings", help="Print the time spent in each phase."),
) -> None:
    """Check that MODEL implements the design in SPEC."""
    from alignguard.api import run_check
    from alignguard.errors import UsageError
    from alignguard.report.console import render_console

    if fail_on not in ("error", "warning"):
        raise UsageError(f"--fail-on must be 'error' or 'warning', not '{fail_on}'", fix="use --fail-on warning")
    level: Literal["error", "warning"] = fail_on  # type: ignore[assignment]
    report = run_check(spec, model, spec_path=str(spec))
    render_console(report, Console(), fail_on=level, timings=timings)
    raise typer.Exit(int(report.exit_code(level)))
