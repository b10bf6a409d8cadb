"""The `junit` format: JUnit XML, one testcase per check result, for CI test dashboards.

A testcase is named `CHECK_ID` within the class `ELEMENT` and carries the file and line it
points at; when one check judges one element more than once (two forbidden paths of one
component), the name gains what tells them apart (the module or graph node, else `#2`), so
every (classname, name) pair is unique, as dashboards that key on it need. A failure that
counts at --fail-on is a <failure>; one that does not (a warning) passes with the warning in
<system-out>; a waived finding is <skipped> with its reason; a check that could not run is an
<error>. Times are measured: a testcase carries the wall time its check spent producing that
result (`CheckResult.seconds`, timed where checks run, including a capture or measurement that
result was the first to need); the suite carries the whole run's time and a timestamp of when
the report was written.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections import Counter

from alignguard.report.anchors import Locator
from alignguard.report.options import RenderOptions
from alignguard.results import CheckResult, Status
from alignguard.results import Report


_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def to_element(report: Report, options: RenderOptions) -> ET.Element:
    locator = Locator(report.spec_path, report.model_path)
    counts = report.counts()
    failures = len(report.findings(options.fail_on))
    errors = counts["error"] + (1 if report.error else 0)
    total_time = report.timings.get("total", sum(report.timings.values()))
    suites = ET.Element("testsuites", name="alignguard", tests=str(len(report.results) + (1 if report.error else 0)),
                        failures=str(failures), errors=str(errors), skipped=str(counts["waived"]),
                        time=f"{total_time:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"alignguard {report.spec_name or report.spec_path}",
                          tests=suites.get("tests"), failures=str(failures), errors=str(errors),
                          skipped=str(counts["waived"]), time=f"{total_time:.3f}",
                          timestamp=dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None).isoformat())
    properties = ET.SubElement(suite, "properties")
    for name, value in (("spec", report.spec_path), ("model", report.model_path), ("capture", report.capture),
                        ("fail_on", options.fail_on), ("exit_code", str(int(report.exit_code(options.fail_on))))):
        ET.SubElement(properties, "property", name=name, value=value)
    if report.error is not None:
        case = ET.SubElement(suite, "testcase", classname="alignguard", name="load spec and model")
        ET.SubElement(case, "error", message=report.error.what, type=report.error.kind).text = report.error.paragraph()
    names = unique_names(report.results)
    seconds = result_seconds(report)
    for result, name, time in zip(report.results, names, seconds):
        _testcase(suite, result, name, time, locator, report, options)
    return suites


# A check id's family is its first segment, the phase name `timings` uses, except these
FAMILY_OF_PREFIX = {"params": "gradient"}  # params.dead is measured with the gradient checks


def result_seconds(report: Report) -> list[float]:
    """Each result's measured wall time; a result without one (built by hand, a waiver rule's) gets an
    even share of what its check family's time leaves after the measured results of that family."""
    families = [FAMILY_OF_PREFIX.get(r.check_id.split(".")[0], r.check_id.split(".")[0]) for r in report.results]
    unmeasured = Counter(family for family, r in zip(families, report.results) if r.seconds is None)
    measured: Counter = Counter()
    for family, result in zip(families, report.results):
        if result.seconds is not None:
            measured[family] += result.seconds
    return [result.seconds if result.seconds is not None
            else max(0.0, report.timings.get(family, 0.0) - measured[family]) / unmeasured[family]
            for family, result in zip(families, report.results)]


def unique_names(results: list[CheckResult]) -> list[str]:
    """The check id, made unique within its element by what tells repeated results apart."""
    pairs = Counter((r.element, r.check_id) for r in results)
    names, seen = [], Counter()
    for result in results:
        name = result.check_id
        if pairs[(result.element, name)] > 1:
            detail = result.where.module or result.where.node
            name = f"{name} ({detail})" if detail else name
        seen[(result.element, name)] += 1
        if seen[(result.element, name)] > 1:
            name = f"{name} #{seen[(result.element, name)]}"
        names.append(name)
    return names


def _testcase(suite: ET.Element, result: CheckResult, name: str, seconds: float, locator: Locator, report: Report,
              options: RenderOptions) -> None:
    anchor = locator.anchor(result)
    case = ET.SubElement(suite, "testcase", classname=result.element, name=name,
                         file=anchor.file, line=str(anchor.line), time=f"{seconds:.3f}")
    body = _body(result)
    if result.status is Status.ERROR:
        ET.SubElement(case, "error", message=result.found, type="check error").text = body
    elif result.status is Status.WAIVED:
        ET.SubElement(case, "skipped", message=f"waived: {result.note}").text = body
    elif result.status is Status.FAIL and report.counts_against(result, options.fail_on):
        ET.SubElement(case, "failure", message=result.found, type=result.severity).text = body
    elif result.status is Status.FAIL:
        ET.SubElement(case, "system-out").text = "warning (does not fail at --fail-on error)\n" + body


def _body(result: CheckResult) -> str:
    lines = [f"expected: {result.expected}", f"found:    {result.found}"]
    if str(result.where):
        lines.append(f"where:    {result.where}")
    if result.fix:
        lines.append(f"fix:      {result.fix}")
    if result.note:
        lines.append(f"note:     {result.note}")
    return "\n".join(lines)


def render(report: Report, options: RenderOptions) -> str:
    return _serialise(to_element(report, options))


def render_many(reports: list[Report], options: RenderOptions) -> str:
    """One <testsuites> with a <testsuite> per report (several spec/model pairs)."""
    roots = [to_element(report, options) for report in reports]
    merged = roots[0]
    for root in roots[1:]:
        merged.extend(list(root))
    for key in ("tests", "failures", "errors", "skipped"):
        merged.set(key, str(sum(int(root.get(key)) for root in roots)))
    merged.set("time", f"{sum(float(root.get('time')) for root in roots):.3f}")
    return _serialise(merged)


def _serialise(root: ET.Element) -> str:
    for node in root.iter():  # XML 1.0 cannot carry control characters a message might hold
        node.text = _NOT_XML.sub("?", node.text) if node.text else node.text
        for key, value in node.attrib.items():
            node.set(key, _NOT_XML.sub("?", value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
