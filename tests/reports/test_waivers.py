"""Waivers through the CLI: a matched waiver turns the finding into WAIVED with its reason; an
expired one fails; one that matches nothing is stale and fails."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import jsonschema

from tests.reports.conftest import MISALIGNED_SPEC, SARIF_SCHEMA

FUTURE = dt.date.today() + dt.timedelta(days=30)
PAST = dt.date.today() - dt.timedelta(days=1)


def waived_spec(write, check="component.called", selector="component side", expires=FUTURE):
    waiver = f"waivers:\n  - check: {check}\n    selector: {selector}\n    reason: side head lands next sprint\n"
    if expires:
        waiver += f"    expires: {expires.isoformat()}\n"
    return write("spec.yaml", MISALIGNED_SPEC + waiver)


def statuses(document):
    return {(r["check_id"], r["element"]): r["status"] for r in document["results"] if r["status"] != "pass"}


def test_matched_waiver_turns_the_finding_into_waived(cli, write, workspace):
    spec = waived_spec(write, selector="component s*")
    result = cli("check", spec, "model.py", "-o", "r.json", "-o", "r.sarif", "-o", "r.xml")
    assert result.exit_code == 0, result.output
    assert "waived component.called — component side: side head lands next sprint" in result.stdout
    document = json.loads((workspace / "r.json").read_text())
    assert statuses(document) == {("component.called", "component side"): "waived"}
    assert document["counts"]["waived"] == 1
    sarif = json.loads((workspace / "r.sarif").read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    (finding,) = sarif["runs"][0]["results"]
    assert finding["suppressions"] == [{"kind": "external", "status": "accepted",
                                        "justification": "side head lands next sprint"}]
    skipped = ET.parse(workspace / "r.xml").getroot().findall("./testsuite/testcase/skipped")
    assert [s.get("message") for s in skipped] == ["waived: side head lands next sprint"]


def test_expired_waiver_fails_and_no_longer_hides_the_finding(cli, write):
    spec = waived_spec(write, expires=PAST)
    result = cli("check", spec, "model.py", "-f", "json")
    assert result.exit_code == 1
    assert statuses(json.loads(result.stdout)) == {
        ("component.called", "component side"): "fail",
        ("waiver.expired", "waiver component.called component side"): "fail",
    }
    assert f"expired on {PAST}" in cli("check", spec, "model.py").stdout


def test_waiver_that_matches_nothing_is_stale(cli, write):
    spec = waived_spec(write, check="component.on_path", selector="component head", expires=None)
    result = cli("check", spec, "model.py", "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert statuses(document) == {
        ("component.called", "component side"): "fail",
        ("waiver.stale", "waiver component.on_path component head"): "fail",
    }
    stale = next(r for r in document["results"] if r["check_id"] == "waiver.stale")
    # the annotation points at the waiver entry in the spec
    spec_lines = spec.read_text().splitlines()
    assert spec_lines[stale["anchor"]["line"] - 1].strip() == "- check: component.on_path"


def test_stale_waiver_severity_can_be_lowered(cli, write):
    spec = waived_spec(write, check="component.on_path", selector="component head", expires=None)
    spec.write_text(spec.read_text().replace("  side:\n    module: unused\n", "")
                    + "severity:\n  waiver.stale: warning\n")
    result = cli("check", spec, "model.py")
    assert result.exit_code == 0 and "WARN" in result.stdout and "waiver.stale" in result.stdout
