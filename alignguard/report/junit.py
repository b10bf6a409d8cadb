"""The `junit` format: JUnit XML, one testcase per check result, for CI test dashboards.

A testcase is named `CHECK_ID` within the class `ELEMENT` and carries the file and line it
points at. A failure that counts at --fail-on is a <failure>; one that does not (a warning)
passes with the warning in <system-out>; a waived finding is <skipped> with its reason; a
check that could not run is an <error>.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

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
                          skipped=str(counts["waived"]), time=f"{total_time:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("spec", report.spec_path), ("model", report.model_path), ("capture", report.capture),
                        ("fail_on", options.fail_on), ("exit_code", str(int(report.exit_code(options.fail_on))))):
        ET.SubElement(properties, "property", name=name, value=value)
    if report.error is not None:
        case = ET.SubElement(suite, "testcase", classname="alignguard", name="load spec and model")
        ET.SubElement(case, "error", message=report.error.what, type=report.error.kind).text = report.error.paragraph()
    for result in report.results:
        _testcase(suite, result, locator, report, options)
    return suites


def _testcase(suite: ET.Element, result: CheckResult, locator: Locator, report: Report,
              options: RenderOptions) -> None:
    anchor = locator.anchor(result)
    case = ET.SubElement(suite, "testcase", classname=result.element, name=result.check_id,
                         file=anchor.file, line=str(anchor.line), time="0")
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
    root = to_element(report, options)
    for node in root.iter():  # XML 1.0 cannot carry control characters a message might hold
        node.text = _NOT_XML.sub("?", node.text) if node.text else node.text
        for key, value in node.attrib.items():
            node.set(key, _NOT_XML.sub("?", value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
