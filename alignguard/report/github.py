"""The `github` format: GitHub Actions workflow commands, one annotation per finding
(`::error file=F,line=L,title=T::message`), placed on the pull request's diff. When the run
is inside Actions (GITHUB_STEP_SUMMARY is set) the Markdown report is also appended to the
job's step summary.

GitHub shows at most 10 error and 10 warning annotations per step and drops the rest without
a word, so the first 10 of each level are written (in report order, the run's own error first)
and a final `::notice` says how many more there are and that the step summary lists them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from alignguard.report.anchors import Locator, parse_where
from alignguard.report.options import RenderOptions
from alignguard.results import Status
from alignguard.results import Report


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, file: str | None = None, line: int | None = None,
            title: str | None = None, col: int | None = None) -> str:
    properties = [(k, v) for k, v in (("file", file), ("line", line), ("col", col), ("title", title)) if v]
    head = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties)
    return f"::{level}{' ' + head if head else ''}::{escape_data(message)}"


SHOWN_PER_LEVEL = 10  # GitHub's limit per step, for each of error and warning


def render(report: Report, options: RenderOptions) -> str:
    return render_many([report], options)


def render_many(reports: list[Report], options: RenderOptions) -> str:
    """Every report's annotations, capped at GitHub's 10 per level, and a notice for the rest."""
    commands = [entry for report in reports for entry in _commands(report, options)]
    lines, left_out = [], {"error": 0, "warning": 0}
    for level, line in commands:
        if sum(1 for kept, _ in lines if kept == level) < SHOWN_PER_LEVEL:
            lines.append((level, line))
        else:
            left_out[level] += 1
    out = [line for _, line in lines]
    if any(left_out.values()):
        more = " and ".join(f"{n} more {level}{'s' if n != 1 else ''}" for level, n in left_out.items() if n)
        out.append(command("notice", f"{more} not annotated: GitHub shows {SHOWN_PER_LEVEL} errors and "
                           f"{SHOWN_PER_LEVEL} warnings per step. The job summary and the log list every finding.",
                           title="alignguard: more findings"))
    return "\n".join(out) + ("\n" if out else "")


def _commands(report: Report, options: RenderOptions) -> list[tuple[str, str]]:
    lines = []
    if report.error is not None:
        anchor = parse_where(report.error.where)
        lines.append(("error", command("error", report.error.paragraph(), anchor.file if anchor else None,
                                       anchor.line if anchor else None, f"alignguard: {report.error.kind}",
                                       anchor.column if anchor else None)))
    locator = Locator(report.spec_path, report.model_path)
    for result in report.results:
        if result.status not in (Status.FAIL, Status.ERROR):
            continue
        level = "error" if result.status is Status.ERROR or report.counts_against(result, options.fail_on) \
            else "warning"
        anchor = locator.anchor(result)
        message = f"expected: {result.expected}\nfound: {result.found}"
        if str(result.where):
            message += f"\nwhere: {result.where}"
        if result.fix:
            message += f"\nfix: {result.fix}"
        lines.append((level, command(level, message, anchor.file, anchor.line,
                                     f"alignguard {result.check_id} — {result.element}")))
    return lines


def write_step_summary(report: Report, options: RenderOptions, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append the Markdown report to $GITHUB_STEP_SUMMARY; the path written, or None outside Actions."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    from alignguard.report.markdown import render as render_markdown

    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(render_markdown(report, options) + "\n")
    return path
