"""`--output-format concise`: one line per finding, as ruff and compilers print them, and
`--statistics`: how many findings each check id has.

    models/cmdn.py:42:9: noise.present [component encoder] no random op on the path (expected ...)
    specs/cmdn.yaml:17:1: component.called [component side] 'unused' is never called (expected ...)
    misaligned: 2 findings, 31 passed, 0 waived (exit 1)

Paths are the same anchors the GitHub and SARIF formats use (the finding's source line, else
the design element's line in the spec). Warnings that do not count at --fail-on are listed with
`(warning)`; passes are not listed.
"""

from __future__ import annotations

from collections import Counter

from alignguard.results import CheckResult, Status
from alignguard.report.anchors import Locator, parse_where


def shown(report) -> list[CheckResult]:
    """Failures (counting or not) and checks that could not run, in report order."""
    return [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]


def finding_line(result: CheckResult, report, locator: Locator, fail_on: str) -> str:
    anchor = locator.anchor(result)
    where = f"{anchor.file}:{anchor.line}:{anchor.column or 1}"
    tag = ""
    if result.status is Status.ERROR:
        tag = " (check error)"
    elif not report.counts_against(result, fail_on):
        tag = " (warning)"
    found = " ".join(result.found.split())  # a multi-line table stays on one line
    return f"{where}: {result.check_id} [{result.element}] {found} (expected {' '.join(result.expected.split())}){tag}"


def summary_line(report, fail_on: str) -> str:
    counts = report.counts()
    findings = len(report.findings(fail_on))
    warnings = len(report.warnings(fail_on))
    text = (f"{report.verdict(fail_on)}: {findings} finding{'s' if findings != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}, {counts['pass']} passed, {counts['waived']} waived, "
            f"{counts['error']} errors (exit {int(report.exit_code(fail_on))})")
    if not report.results and report.error is None:
        text += " — the spec selects no check: it proves nothing"
    return text


def render_lines(report, fail_on: str = "error") -> list[str]:
    lines = []
    if report.error is not None:
        anchor = parse_where(report.error.where)
        place = f"{anchor.file}:{anchor.line}:{anchor.column or 1}: " if anchor else ""
        lines.append(f"{place}{report.error.paragraph()}")
    locator = Locator(report.spec_path, report.model_path)
    lines += [finding_line(r, report, locator, fail_on) for r in shown(report)]
    lines.append(summary_line(report, fail_on))
    return lines


def statistics(report, fail_on: str = "error") -> list[str]:
    """`COUNT  CHECK_ID  [level]` per check id with findings, most first (ruff's --statistics)."""
    counts = Counter()
    levels: dict[str, str] = {}
    for result in shown(report):
        counts[result.check_id] += 1
        level = ("error" if result.status is Status.ERROR or report.counts_against(result, fail_on) else "warning")
        levels[result.check_id] = "error" if "error" in (levels.get(result.check_id), level) else level
    if not counts:
        return ["no findings"]
    width = len(str(max(counts.values())))
    name_width = max(len(name) for name in counts)
    return [f"{count:>{width}}  {check_id:<{name_width}}  [{levels[check_id]}]"
            for check_id, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def render(report, options) -> str:
    """The `concise` format."""
    return "\n".join(render_lines(report, options.fail_on)) + "\n"
