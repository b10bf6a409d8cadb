"""The console report (rich): one line per check grouped by design element, then every
failure with expected / found / where / fix, then a summary line with the exit code."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from alignguard.checks.base import Status
from alignguard.report.model import FailOn, Report

_STYLE = {Status.PASS: ("PASS", "green"), Status.FAIL: ("FAIL", "bold red"),
          Status.WAIVED: ("WAIVED", "yellow"), Status.ERROR: ("ERROR", "bold magenta")}


def render_console(report: Report, console: Console, fail_on: FailOn = "error", timings: bool = False) -> None:
    console.print(f"[bold]alignguard check[/] {escape(report.spec_name)} ({escape(report.spec_path)}) "
                  f"against {escape(report.model_path)}")
    if report.capture:
        console.print(f"graph capture: {escape(report.capture)}")
    if report.capture_note:
        console.print(f"  [yellow]note:[/] {escape(report.capture_note)}")
    for element, results in groupby(sorted(report.results, key=lambda r: r.element), key=lambda r: r.element):
        console.print(Text(element, style="bold"))
        for result in results:
            label, style = _STYLE[result.status]
            if result.status is Status.FAIL and result.severity == "warning":
                label, style = "WARN", "yellow"
            line = Text("  ")
            line.append(f"{label:<6}", style=style)
            line.append(f" {result.check_id}: ")
            line.append(result.found if result.status is not Status.PASS else result.expected)
            console.print(line)
    problems = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
    if problems:
        console.print()
        console.print("[bold]Findings[/]")
    for result in problems:
        label, style = _STYLE[result.status]
        console.print(f"[{style}]{label}[/] [bold]{escape(result.check_id)}[/] — {escape(result.element)}"
                      f" [dim]({result.severity})[/]")
        console.print(f"  expected: {escape(result.expected)}")
        console.print(f"  found:    {escape(result.found)}")
        if str(result.where):
            console.print(f"  where:    {escape(str(result.where))}")
        if result.fix:
            console.print(f"  fix:      {escape(result.fix)}")
    for result in report.results:
        if result.status is Status.WAIVED:
            console.print(f"[yellow]waived[/] {escape(result.check_id)} — {escape(result.element)}: "
                          f"{escape(result.note)}")
    if timings and report.timings:
        console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items()))
    counts = report.counts()
    code = report.exit_code(fail_on)
    verdict = {0: "[green]aligned[/]", 1: "[red]misaligned[/]", 2: "[magenta]could not judge[/]"}[int(code)]
    console.print(f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, "
                  f"{counts['waived']} waived, {counts['error']} errors (exit {int(code)})")
