"""`alignguard mutate SPEC MODEL`: break the model on purpose and see whether the spec notices.

Exit 0 when the kill rate reaches --min-kill, 1 when it does not, 2 on bad input (or when the
unmutated model does not pass the check, or no operator applies).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors


@reports_errors
def mutate_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML)."),
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    min_kill: float = typer.Option(1.0, "--min-kill", help="Exit 1 when the kill rate is below this (0..1)."),
    operators: Optional[List[str]] = typer.Option(
        None, "--operator", "-o", help="Only these operators (id or glob, repeatable), e.g. 'noise.*'."),
    fail_on: str = typer.Option("error", "--fail-on", help="Lowest finding severity that kills: error|warning."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the table as Markdown here."),
) -> None:
    """Generate design-breaking mutants of MODEL and report which ones the checks of SPEC catch."""
    from rich.console import Console

    from alignguard.cli.heap import import_torch_and_freeze_heap
    from alignguard.errors import UsageError
    from alignguard.isolation import run_isolated
    from alignguard.mutate.render import markdown_table, render_console

    refuse_overwriting_inputs([markdown] if markdown else [], [spec, model], "--markdown")
    if not 0.0 <= min_kill <= 1.0:
        raise UsageError(f"--min-kill must be between 0 and 1, not {min_kill}", fix="e.g. --min-kill 0.9")
    if fail_on not in ("error", "warning"):
        raise UsageError(f"--fail-on must be 'error' or 'warning', not '{fail_on}'", fix="use --fail-on warning")
    import_torch_and_freeze_heap()
    live = Console(stderr=True).is_terminal and not json_output
    report = run_isolated(_mutate, spec, model, operators, min_kill, fail_on, live, activity="mutation testing",
                          stdout_to_stderr=True)
    if markdown is not None:
        try:
            markdown.write_text(markdown_table(report), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write '{markdown}': {exc.strerror or exc}",
                             fix="choose a writable --markdown path") from None
    if json_output:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        render_console(report, Console())
    raise typer.Exit(int(report.exit_code()))


def _mutate(spec: Path, model: Path, operators, min_kill: float, fail_on: str, live: bool):
    """In the model worker: every mutant runs the user's code; only the report comes back."""
    from rich.console import Console

    from alignguard.api import load
    from alignguard.mutate.runner import run_mutation

    loaded, model_file = load(spec, model)
    status = Console(stderr=True, force_terminal=live or None)

    def progress(index: int, total: int, mutant) -> None:
        if live:
            status.print(f"[dim]mutant {index + 1}/{total}: {mutant.id}[/]")

    return run_mutation(loaded, model_file, spec_path=str(spec), operators=operators, min_kill=min_kill,
                        fail_on=fail_on, progress=progress)
