"""`alignguard mutate SPEC MODEL`: break the model on purpose and see whether the spec notices.

Exit 0 when the kill rate reaches --min-kill, 1 when it does not, 2 on bad input (or when the
unmutated model does not pass the check, or no operator applies). Report options follow
`check`'s: `--format/-f` for standard output, `--output/-o [FORMAT:]FILE` for files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors
from alignguard.cli.timeout import resolve_timeout, timeout_option


@reports_errors
def mutate_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML)."),
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    output_format: str = typer.Option("text", "--format", "-f", metavar="FORMAT",
                                      help="Report on standard output: text|json|markdown."),
    outputs: Optional[List[str]] = typer.Option(
        None, "--output", "-o", metavar="[FORMAT:]FILE",
        help="Also write a report to FILE, repeatable; without FORMAT the extension decides (.json .md .txt)."),
    min_kill: float = typer.Option(1.0, "--min-kill", help="Exit 1 when the kill rate is below this (0..1)."),
    operators: Optional[List[str]] = typer.Option(
        None, "--operator", help="Only these operators (id or glob, repeatable), e.g. 'noise.*'. [default: all]"),
    fail_on: str = typer.Option("error", "--fail-on", help="Lowest finding severity that kills: error|warning."),
    timeout: Optional[float] = timeout_option("the unmutated check, or any one mutant,"),
    json_output: bool = typer.Option(False, "--json", hidden=True, help="Old spelling of --format json."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", hidden=True,
                                            help="Old spelling of --output markdown:FILE."),
) -> None:
    """Generate design-breaking mutants of MODEL and report which ones the checks of SPEC catch."""
    from rich.console import Console

    from alignguard.cli.heap import import_torch_and_freeze_heap
    from alignguard.errors import UsageError
    from alignguard.isolation import run_isolated

    stdout_format = "json" if json_output else _format(output_format)
    files = [_output(value) for value in outputs or []] + ([("markdown", markdown)] if markdown else [])
    refuse_overwriting_inputs([path for _, path in files], [spec, model], "--output")
    if not 0.0 <= min_kill <= 1.0:
        raise UsageError(f"--min-kill must be between 0 and 1, not {min_kill}", fix="e.g. --min-kill 0.9")
    if fail_on not in ("error", "warning"):
        raise UsageError(f"--fail-on must be 'error' or 'warning', not '{fail_on}'", fix="use --fail-on warning")
    limit = resolve_timeout(timeout)
    import_torch_and_freeze_heap(sleeping_threads=True)
    live = Console(stderr=True).is_terminal
    # the clock restarts for each mutant: the limit bounds one check, not the whole run
    report = run_isolated(_mutate, spec, model, operators, min_kill, fail_on, live, limit,
                          activity="mutation testing", timeout=limit, stdout_to_stderr=True)
    for name, path in files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_render(report, name), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the {name} report to '{path}': {exc.strerror or exc}",
                             fix="choose a writable path for --output") from None
    if stdout_format == "text":
        from alignguard.mutate.render import render_console

        render_console(report, Console())
    else:
        sys.stdout.write(_render(report, stdout_format))
    raise typer.Exit(int(report.exit_code()))


FORMATS = {"text": (".txt", ".log"), "json": (".json",), "markdown": (".md", ".markdown")}


def _format(name: str) -> str:
    from alignguard.errors import UsageError

    if name.lower() not in FORMATS:
        raise UsageError(f"mutate has no report format '{name}'", fix=f"use one of {', '.join(FORMATS)}")
    return name.lower()


def _output(value: str) -> tuple[str, Path]:
    """`json:mutants.json` or `mutants.json` (the extension decides) -> (format, path)."""
    from alignguard.errors import UsageError

    prefix, sep, rest = value.partition(":")
    if sep and prefix.lower() in FORMATS and rest:
        return prefix.lower(), Path(rest)
    name = next((f for f, suffixes in FORMATS.items() if value.lower().endswith(suffixes)), None)
    if name is None:
        raise UsageError(f"cannot tell the report format of '{value}' from its extension",
                         fix=f"name it FORMAT:{value}, e.g. --output json:{value} (formats: {', '.join(FORMATS)})")
    return name, Path(value)


def _render(report, name: str) -> str:
    from alignguard.mutate.render import markdown_table

    if name == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if name == "markdown":
        return markdown_table(report)
    from io import StringIO

    from rich.console import Console

    from alignguard.mutate.render import render_console

    buffer = StringIO()
    render_console(report, Console(file=buffer, width=120, color_system=None))
    return buffer.getvalue()


def _mutate(spec: Path, model: Path, operators, min_kill: float, fail_on: str, live: bool, timeout: float | None):
    """In the model worker: every mutant runs the user's code; only the report comes back."""
    from rich.console import Console

    from alignguard.api import load
    from alignguard.isolation import set_deadline
    from alignguard.mutate.runner import run_mutation

    loaded, model_file = load(spec, model)
    status = Console(stderr=True, force_terminal=live or None)

    def progress(index: int, total: int, mutant) -> None:
        set_deadline(timeout, f"mutant {index + 1}/{total} ({mutant.id})")
        if live:
            status.print(f"[dim]mutant {index + 1}/{total}: {mutant.id}[/]")

    return run_mutation(loaded, model_file, spec_path=str(spec), operators=operators, min_kill=min_kill,
                        fail_on=fail_on, progress=progress)
