"""The `sarif` format: SARIF 2.1.0 for GitHub code scanning (upload with
github/codeql-action/upload-sarif).

Only failures, errors and waived findings become results (code scanning shows alerts, not
passes); a waived finding carries an external suppression with the waiver's reason, so it is
closed rather than silently gone. `partialFingerprints` hash the check id, element, module and
file (not the line), so an alert keeps its identity when unrelated code moves it.
"""

from __future__ import annotations

import json
from urllib.parse import quote
from pathlib import Path
from typing import Any

from alignguard import __version__
from alignguard.report.anchors import Anchor, Locator, fingerprints, parse_where, source_root
from alignguard.report.options import RenderOptions
from alignguard.results import CheckResult, Report, Status

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "alignguardFindingHash/v1"


def to_dict(report: Report, options: RenderOptions) -> dict[str, Any]:
    locator = Locator(report.spec_path, report.model_path)
    shown = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR, Status.WAIVED)]
    prints = dict(zip(map(id, report.results), fingerprints(report.results, locator)))
    rule_ids = list(dict.fromkeys(r.check_id for r in shown))
    results = [_result(r, rule_ids.index(r.check_id), locator.anchor(r), prints[id(r)], report, options)
               for r in shown]
    invocation: dict[str, Any] = {
        "executionSuccessful": report.error is None and int(report.exit_code(options.fail_on)) in (0, 1),
        "exitCode": int(report.exit_code(options.fail_on)),
    }
    if report.error is not None:
        notification: dict[str, Any] = {"level": "error", "message": {"text": report.error.paragraph()}}
        anchor = parse_where(report.error.where)
        if anchor:
            notification["locations"] = [_location(anchor)]
        invocation["toolExecutionNotifications"] = [notification]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "alignguard",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_rule(check_id) for check_id in rule_ids],
            }},
            "automationDetails": {"id": f"alignguard/{report.spec_name or Path(report.spec_path).stem}/"},
            # uris are relative to the repository root, so code scanning finds them from any folder
            "originalUriBaseIds": {"%SRCROOT%": {"uri": source_root().as_uri() + "/",
                                                 "description": {"text": "the repository root"}}},
            "invocations": [invocation],
            "results": results,
            "properties": {"capture": report.capture, "captureNote": report.capture_note,
                           "verdict": report.verdict(options.fail_on)},
        }],
    }


def _rule(check_id: str) -> dict[str, Any]:
    text = _explanation(check_id)
    first = text.split(". ")[0].rstrip(".") + "." if text else f"alignguard check {check_id}."
    return {
        "id": check_id,
        "name": "".join(part.title() for part in check_id.replace("_", ".").split(".")),
        "shortDescription": {"text": first},
        "fullDescription": {"text": text or first},
        "help": {"text": (text or first) + f"\n\nRun `alignguard explain {check_id}` for details."},
        "defaultConfiguration": {"level": "error"},
    }


def _explanation(check_id: str) -> str:
    from alignguard.checks.catalogue import explanation

    try:
        return explanation(check_id) or ""
    except Exception:  # a broken check module must not stop the report being written
        return ""


def _result(result: CheckResult, rule_index: int, anchor: Anchor, fingerprint: str,
            report: Report, options: RenderOptions) -> dict[str, Any]:
    level = "error" if result.status is Status.ERROR or result.severity == "error" else "warning"
    if result.status is Status.FAIL and not report.counts_against(result, options.fail_on):
        level = "warning"
    text = f"{result.element}: {result.found} (expected {result.expected})."
    if result.fix:
        text += f" Fix: {result.fix}"
    location = _location(anchor)
    if result.where.module:
        location["logicalLocations"] = [{"fullyQualifiedName": result.where.module, "kind": "module"}]
    out: dict[str, Any] = {
        "ruleId": result.check_id,
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": level,
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": {"element": result.element, "status": result.status.value, "expected": result.expected,
                       "found": result.found, "fix": result.fix, "graphNode": result.where.node or ""},
    }
    if result.status is Status.WAIVED:
        out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": result.note}]
    return out


def _location(anchor: Anchor) -> dict[str, Any]:
    artifact: dict[str, Any]
    if Path(anchor.file).is_absolute():
        artifact = {"uri": Path(anchor.file).as_uri()}
    else:
        artifact = {"uri": quote(anchor.file), "uriBaseId": "%SRCROOT%"}
    region: dict[str, Any] = {"startLine": anchor.line}
    if anchor.column:
        region["startColumn"] = anchor.column
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


def combined(reports: list[Report], options: RenderOptions) -> dict[str, Any]:
    """One SARIF log holding one run per report (several spec/model pairs in one upload)."""
    logs = [to_dict(report, options) for report in reports]
    return {**logs[0], "runs": [run for log in logs for run in log["runs"]]}


def render(report: Report, options: RenderOptions) -> str:
    return json.dumps(to_dict(report, options), indent=2, ensure_ascii=False) + "\n"


def render_many(reports: list[Report], options: RenderOptions) -> str:
    return json.dumps(combined(reports, options), indent=2, ensure_ascii=False) + "\n"
