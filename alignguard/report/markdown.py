"""The `markdown` format: a verdict, a table of checks per design element, then each finding
with expected / found / where / fix. Used for pull-request comments and, with the `github`
format, for the job's step summary."""

from __future__ import annotations

from alignguard.report.anchors import Locator
from alignguard.report.console import grouped, label
from alignguard.report.options import RenderOptions
from alignguard.results import Status
from alignguard.results import Report

_ICON = {"PASS": "✅", "FAIL": "❌", "WARN": "⚠️", "WAIVED": "⏸️", "ERROR": "💥"}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render(report: Report, options: RenderOptions) -> str:
    fail_on = options.fail_on
    verdict = report.verdict(fail_on)
    code = int(report.exit_code(fail_on))
    counts = report.counts()
    warnings = len(report.warnings(fail_on))
    lines = [
        f"## alignguard: {verdict} ({'`' + report.spec_name + '`' if report.spec_name else report.spec_path})",
        "",
        f"`{report.spec_path}` against `{report.model_path}` — **{counts['pass']} passed, "
        f"{counts['fail'] - warnings} failed, {warnings} warnings, {counts['waived']} waived, "
        f"{counts['error']} errors** (exit {code}, fail on {fail_on}).",
    ]
    if report.capture:
        lines += ["", f"Graph capture: {report.capture}" + (f" — {report.capture_note}" if report.capture_note else "")]
    if report.error is not None:
        lines += ["", f"> **{report.error.kind}**: {report.error.paragraph()}"]
    if report.results:
        lines += ["", "| | element | check | result |", "|---|---|---|---|"]
        for element, results in grouped(report.results).items():
            for result in results:
                word, _ = label(result, report, fail_on)
                shown = (result.expected if result.status is Status.PASS else result.found).split("\n")[0]
                lines.append(f"| {_ICON[word]} {word} | {cell(element)} | `{result.check_id}` | {cell(shown)} |")
    problems = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
    if problems:
        locator = Locator(report.spec_path, report.model_path)
        lines += ["", "### Findings"]
        for result in problems:
            word, _ = label(result, report, fail_on)
            anchor = locator.anchor(result)
            lines += [
                "",
                f"**{_ICON[word]} `{result.check_id}` — {cell(result.element)}** ({result.severity}, "
                f"`{anchor.file}:{anchor.line}`)",
                f"- expected: {cell(result.expected)}",
                f"- found: {cell(result.found.split(chr(10))[0])}",
            ]
            if str(result.where):
                lines.append(f"- where: {cell(str(result.where))}")
            if result.fix:
                lines.append(f"- fix: {cell(result.fix)}")
            more = result.found.split("\n", 1)[1:]  # a measured table under the finding
            if more:
                lines += ["", "```text", *more[0].splitlines(), "```"]
    waived = [r for r in report.results if r.status is Status.WAIVED]
    if waived:
        lines += ["", "### Waived", ""]
        lines += [f"- `{r.check_id}` — {cell(r.element)}: {cell(r.note)}" for r in waived]
    if options.timings and report.timings:
        lines += ["", "### Timings", "", "| phase | seconds |", "|---|---:|"]
        lines += [f"| {cell(p)} | {s:.3f} |" for p, s in sorted(report.timings.items(), key=lambda i: -i[1])]
    return "\n".join(lines) + "\n"
