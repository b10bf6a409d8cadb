"""The mutation report as a rich table, followed by what to do about each survivor."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alignguard.mutate.report import MutationReport

NOT_APPLICABLE = "not applicable (not generated: the change breaks nothing the spec states)"
_STYLE = {"killed": "green", "survived": "bold red", "crashed": "yellow", "error": "magenta"}


def table(report: MutationReport) -> Table:
    grid = Table(title=f"alignguard mutate {escape(report.spec_name)} ({escape(report.spec_path)}) "
                       f"against {escape(report.model_path)}", title_justify="left", show_lines=False)
    grid.add_column("#", justify="right")
    grid.add_column("mutant")
    grid.add_column("operator", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("killed by")
    for number, result in enumerate(report.results, start=1):
        grid.add_row(str(number), escape(result.description), result.operator,
                     f"[{_STYLE[result.status]}]{result.status}[/]", escape(", ".join(result.killed_by)))
    return grid


def summary(report: MutationReport) -> str:
    counts, rate = report.counts(), report.kill_rate()
    rate_text = "no mutant ran" if rate is None else f"kill rate {rate:.0%} ({counts['killed']}/{report.judged()})"
    seconds = report.seconds
    return (f"{rate_text}, minimum {report.min_kill:.0%}: {counts['survived']} survived, {counts['crashed']} crashed, "
            f"{counts['error']} could not be judged; {len(report.results)} mutants"
            f"{f' ({len(report.not_applicable)} not applicable)' if report.not_applicable else ''} in {seconds.get('total', 0):.1f} s "
            f"(analysis {seconds.get('analysis', 0):.1f} s, baseline check {seconds.get('baseline', 0):.1f} s) "
            f"(exit {int(report.exit_code())})")


def render_console(report: MutationReport, console: Console) -> None:
    console.print(table(report))
    survivors = [r for r in report.results if r.status == "survived"]
    if survivors:
        console.print("\n[bold]survivors: the spec rule that would catch each[/]")
        for result in survivors:
            console.print(f"  [red]{escape(result.id)}[/]: {escape(result.suggestion)}")
    for status, heading in (("crashed", "crashed (invalid mutants, left out of the kill rate)"),
                            ("error", "could not be judged (exit 2, counted as not killed)")):
        broken = [r for r in report.results if r.status == status]
        if broken:
            console.print(f"\n[bold]{heading}[/]")
            for result in broken:
                console.print(f"  [{_STYLE[status]}]{escape(result.id)}[/]: {escape(result.detail)}")
    if report.not_applicable:
        console.print(f"\n[bold]{NOT_APPLICABLE}[/]")
        for entry in report.not_applicable:
            console.print(f"  {escape(entry.id)}: {escape(entry.reason)}")
    if report.skipped:
        console.print("\n[bold]operators that did not apply[/]")
        for skipped in report.skipped:
            console.print(f"  {skipped.operator}: {escape(skipped.reason)}")
    console.print()
    console.print(summary(report), style="bold green" if report.exit_code() == 0 else "bold red")


def markdown_table(report: MutationReport) -> str:
    """The same table in Markdown, for docs and CI summaries."""
    lines = ["| # | mutant | operator | status | killed by |", "|---|---|---|---|---|"]
    for number, r in enumerate(report.results, start=1):
        text = r.description.replace("|", "\\|")
        lines.append(f"| {number} | {text} | `{r.operator}` | {r.status} | {', '.join(f'`{k}`' for k in r.killed_by)} |")
    if report.not_applicable:
        lines += ["", f"**{NOT_APPLICABLE}**", ""]
        lines += [f"- `{n.id}`: {n.reason}" for n in report.not_applicable]
    return "\n".join(lines) + "\n\n" + summary(report) + "\n"
