"""The console report (rich): one line per check grouped by design element, then every
failure with expected / found / where / fix, then a summary line with the exit code."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from alignguard.results import CheckResult, Status
from alignguard.results import FailOn, Report

_STYLE = {Status.PASS: ("PASS", "green"), Status.FAIL: ("FAIL", "bold red"),
          Status.WAIVED: ("WAIVED", "yellow"), Status.ERROR: ("ERROR", "bold magenta")}
_VERDICT_STYLE = {"aligned": "green", "misaligned": "red", "could not judge": "magenta"}


def label(result: CheckResult, report: Report, fail_on: FailOn) -> tuple[str, str]:
    """Status word and style; a failure that does not count at this threshold reads WARN."""
    if result.status is Status.FAIL and not report.counts_against(result, fail_on):
        return "WARN", "yellow"
    return _STYLE[result.status]


def grouped(results: list[CheckResult]) -> dict[str, list[CheckResult]]:
    """Results by design element, elements in the order the checks first reported them."""
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(result.element, []).append(result)
    return groups


def render_console(report: Report, console: Console, fail_on: FailOn = "error", timings: bool = False) -> None:
    console.print(f"[bold]alignguard check[/] {escape(report.spec_name or report.spec_path)} "
                  f"({escape(report.spec_path)}) against {escape(report.model_path)}")
    if report.error is not None:
        console.print(f"[bold magenta]{escape(report.error.paragraph())}[/]")
    if report.capture:
        console.print(f"graph capture: {escape(report.capture)}")
    if report.capture_note:
        console.print(f"  [yellow]note:[/] {escape(report.capture_note)}")
    for element, results in grouped(report.results).items():
        console.print(Text(element, style="bold"))
        for result in results:
            word, style = label(result, report, fail_on)
            line = Text("  ")
            line.append(f"{word:<6}", style=style)
            line.append(f" {result.check_id}: ")
            line.append(result.expected if result.status is Status.PASS else result.found)
            console.print(line)
    _findings(report, console, fail_on)
    if timings:
        _timings(report, console)
    _summary(report, console, fail_on)


def _findings(report: Report, console: Console, fail_on: FailOn) -> None:
    problems = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
    if problems:
        console.print()
        console.print("[bold]Findings[/]")
    for result in problems:
        word, style = label(result, report, fail_on)
        console.print(f"[{style}]{word}[/] [bold]{escape(result.check_id)}[/] — {escape(result.element)}"
                      f" [dim]({result.severity})[/]")
        console.print(f"  expected: {escape(result.expected)}")
        console.print(f"  found:    {escape(result.found)}".replace("\n", "\n            "))  # tables stay indented
        if str(result.where):
            console.print(f"  where:    {escape(str(result.where))}")
        if result.fix:
            console.print(f"  fix:      {escape(result.fix)}")
        console.print(f"  [dim]explain: alignguard explain {escape(result.check_id)}[/]")
    waived = [r for r in report.results if r.status is Status.WAIVED]
    if waived:
        console.print()
    for result in waived:
        console.print(f"[yellow]waived[/] {escape(result.check_id)} — {escape(result.element)}: "
                      f"{escape(result.note)}")


def _timings(report: Report, console: Console) -> None:
    if not report.timings:
        console.print("timings: none recorded")
        return
    table = Table(title="timings per phase", title_justify="left", show_edge=False)
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for phase, seconds in sorted(report.timings.items(), key=lambda item: -item[1]):
        table.add_row(phase, f"{seconds:.3f}")
    console.print(table)


def _summary(report: Report, console: Console, fail_on: FailOn) -> None:
    counts = report.counts()
    code = int(report.exit_code(fail_on))
    verdict = report.verdict(fail_on)
    warnings = len(report.warnings(fail_on))
    failed = counts["fail"] - warnings
    text = (f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]: {counts['pass']} passed, {failed} failed, "
            f"{warnings} warnings, {counts['waived']} waived, {counts['error']} errors (exit {code})")
    if not report.results and report.error is None:
        text += " — the spec selects no check: it proves nothing"
    console.print(text)


def render_text(report: Report, fail_on: FailOn = "error", timings: bool = False) -> str:
    """The console report as plain text (for --output FILE)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=110, no_color=True, force_terminal=False, highlight=False,
                      soft_wrap=True)
    render_console(report, console, fail_on=fail_on, timings=timings)
    return buffer.getvalue()


def render(report: Report, options) -> str:
    """The `text` format (plain, for files and pipes)."""
    return render_text(report, fail_on=options.fail_on, timings=options.timings)
