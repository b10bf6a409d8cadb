"""Every report format, produced by the CLI and read back by a real parser."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from junitparser import JUnitXml

from alignguard.report.json import SCHEMA_PATH
from tests.reports.conftest import HERE, MISALIGNED_SPEC, SARIF_SCHEMA


@pytest.fixture
def misaligned(write):
    return write("spec.yaml", MISALIGNED_SPEC)


def test_json_validates_against_the_shipped_schema(cli, misaligned, workspace):
    result = cli("check", misaligned, "model.py", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(document)
    assert document["schema_version"] == 1
    assert document["exit_code"] == 1 and document["verdict"] == "misaligned"
    failing = [r for r in document["results"] if r["status"] == "fail"]
    assert [(r["check_id"], r["element"]) for r in failing] == [("component.called", "component side")]
    assert failing[0]["counts_against"] is True
    # no file:line from the graph for a module that does not exist: the anchor is the spec's line
    assert failing[0]["anchor"] == {"file": "spec.yaml", "line": MISALIGNED_SPEC.lstrip().splitlines().index("  side:") + 1}
    assert document["counts"]["pass"] == len(document["results"]) - 1


def test_schema_rejects_a_document_with_a_missing_field(cli, misaligned):
    document = json.loads(cli("check", misaligned, "model.py", "-f", "json").stdout)
    del document["results"][0]["fingerprint"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))


def test_sarif_is_valid_2_1_0(cli, misaligned, workspace):
    result = cli("check", misaligned, "model.py", "--output", "sarif:out/report.sarif")
    assert result.exit_code == 1
    sarif = json.loads((workspace / "out/report.sarif").read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    run = sarif["runs"][0]
    (finding,) = run["results"]
    assert finding["ruleId"] == "component.called" and finding["level"] == "error"
    assert run["tool"]["driver"]["rules"][finding["ruleIndex"]]["id"] == "component.called"
    location = finding["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "spec.yaml", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] >= 1
    assert run["invocations"][0]["exitCode"] == 1


def test_sarif_fingerprints_survive_moved_lines(cli, misaligned, workspace):
    def sarif_after(spec_text: str):
        misaligned.write_text(spec_text)
        cli("check", misaligned, "model.py", "-o", "r.sarif")
        (finding,) = json.loads((workspace / "r.sarif").read_text())["runs"][0]["results"]
        return finding["partialFingerprints"], finding["locations"][0]["physicalLocation"]["region"]["startLine"]

    before, line_before = sarif_after(misaligned.read_text())
    after, line_after = sarif_after("# a comment\n# and another\n" + misaligned.read_text())
    assert line_after == line_before + 2
    assert before == after


def test_junit_has_one_testcase_per_check(cli, misaligned, workspace):
    result = cli("check", misaligned, "model.py", "--format", "json", "--output", "junit.xml")
    document = json.loads(result.stdout)
    root = ET.parse(workspace / "junit.xml").getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(document["results"])
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("component side", "component.called")]
    assert failed[0].get("file") == "spec.yaml" and int(failed[0].get("line")) > 1
    suite = next(iter(JUnitXml.fromfile(str(workspace / "junit.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (len(cases), 1, 0)


def test_github_annotations_carry_file_and_line(cli, misaligned):
    result = cli("check", misaligned, "model.py", "--format", "github")
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("::error file=spec.yaml,line=")
    assert "title=alignguard component.called — component side::" in lines[0]
    assert "%0Afix: " in lines[0]  # multi-line message, escaped


def test_github_writes_a_step_summary_inside_actions(cli, misaligned, workspace):
    summary = workspace / "summary.md"
    result = cli("check", misaligned, "model.py", "-f", "text", "-f", "github",
                 env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    assert "misaligned" in result.stdout and "::error file=spec.yaml" in result.stdout
    text = summary.read_text()
    assert text.startswith("## alignguard: misaligned") and "| ❌ FAIL | component side |" in text


def test_markdown_lists_checks_and_findings(cli, misaligned):
    text = cli("check", misaligned, "model.py", "-f", "markdown").stdout
    assert "### Findings" in text and "`component.called` — component side" in text
    header = text.splitlines().index("| | element | check | result |")
    rows = [line for line in text.splitlines()[header + 2:] if line.startswith("| ")]
    results = json.loads(cli("check", misaligned, "model.py", "-f", "json").stdout)["results"]
    assert len(rows) == len(results) == 11 and all(row.count(" | ") == 3 for row in rows)


def test_console_plus_several_files_in_one_run(cli, misaligned, workspace):
    result = cli("check", misaligned, "model.py", "-o", "a.sarif", "-o", "b.json", "-o", "c.xml",
                 "-o", "markdown:d.txt", "-o", "e.txt", "--timings")
    assert result.exit_code == 1
    assert "Findings" in result.stdout and "timings per phase" in result.stdout
    assert json.loads((workspace / "a.sarif").read_text())["version"] == "2.1.0"
    assert json.loads((workspace / "b.json").read_text())["schema_version"] == 1
    ET.parse(workspace / "c.xml")
    assert (workspace / "d.txt").read_text().startswith("## alignguard")
    assert "component.called" in (workspace / "e.txt").read_text() and "\x1b[" not in (workspace / "e.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (("--format", "sarf"), "did you mean 'sarif'"),
    (("--format", "json", "--format", "text"), "--output json:FILE"),
    (("--output", "report.bin"), "cannot tell the report format"),
    (("--output", "jsn:report.json"), "did you mean 'json'"),
    (("--output", "a.json", "--output", "json:a.json"), "two --output options"),
])
def test_report_options_are_checked_before_running(cli, misaligned, args, message):
    result = cli("check", misaligned, "model.py", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_spec_error_is_still_reported_in_files_and_annotations(cli, write, workspace):
    broken = write("broken.yaml", MISALIGNED_SPEC.replace("reaches: [logit]", "reaches: [logitt]"))
    result = cli("check", broken, "model.py", "-f", "github", "-o", "r.sarif", "-o", "r.json", "-o", "r.xml")
    assert result.exit_code == 2
    assert result.stdout.startswith("::error file=broken.yaml,line=")
    assert "spec error" in result.output  # the paragraph on stderr
    sarif = json.loads((workspace / "r.sarif").read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    (invocation,) = sarif["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    notification = invocation["toolExecutionNotifications"][0]
    assert "logitt" in notification["message"]["text"]
    assert notification["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.yaml"
    document = json.loads((workspace / "r.json").read_text())
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))
    assert document["verdict"] == "could not judge" and "logitt" in document["error"]["what"]
    assert ET.parse(workspace / "r.xml").getroot().find("./testsuite/testcase/error") is not None


def test_fail_on_warning_uses_spec_severities(cli, write):
    spec = write("spec.yaml", MISALIGNED_SPEC + "severity:\n  component.called: warning\n")
    relaxed = cli("check", spec, "model.py")
    assert relaxed.exit_code == 0
    assert "WARN" in relaxed.stdout and "1 warnings" in relaxed.stdout
    strict = cli("check", spec, "model.py", "--fail-on", "warning", "-f", "json")
    assert strict.exit_code == 1
    (finding,) = [r for r in json.loads(strict.stdout)["results"] if r["status"] == "fail"]
    assert finding["severity"] == "warning" and finding["counts_against"] is True
    annotation = cli("check", spec, "model.py", "-f", "github").stdout
    assert annotation.startswith("::warning file=spec.yaml")


KITCHEN_SINK = """
version: 1
name: everything
inputs:
  x: {role: invariant}
  c: {role: context}
symbols:
  z: z
  U: U
  M: M
  B: B
  logit: logit
components:
  encoder: {module: encoder, reaches: [z, U, logit]}
  heads: {module: heads, reaches: [M, B]}
  noisy: {module: encoder, stochastic: {symbol: z}}
flow:
  required: [{from: x, via: [z], to: logit}]
  forbidden: [{from: c, to: z}]
formulas:
  - equation: logit = M * U + B
forbidden_patterns:
  - {name: additive_leak, left: x, right: c, on_path_to: logit}
losses:
  bce: {min_share: 0.5, reaches: [encoder, heads], step: 100}
  l2: {min_share: 0.0, reaches: [encoder], step: 0}
probes:
  noise: {symbol: z}
  swap_invariance: {symbol: z, context: c}
  modulation: {output: logit, energy: U, context: c}
  positivity: {symbols: [M], trials: 16}
  translation_symmetry: {shift: U, output: logit}
severity:
  probe.*: warning
waivers:
  - {check: "pattern.*", selector: "*", reason: "leak kept for this test"}
"""


@pytest.mark.slow
def test_every_check_family_serialises_to_valid_json_and_sarif(cli, write, workspace):
    """Checks put numbers, tables and node lists in `details`; all of it must survive both schemas."""
    shutil.copy(HERE / "models" / "leaky.py", workspace / "leaky.py")
    spec = write("everything.yaml", KITCHEN_SINK)
    result = cli("check", spec, "leaky.py", "-o", "r.json", "-o", "r.sarif", "-o", "r.xml", "-o", "r.md")
    assert result.exit_code == 1, result.output
    document = json.loads((workspace / "r.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(document)
    families = {r["check_id"].split(".")[0] for r in document["results"]}
    assert {"symbol", "component", "flow", "formula", "pattern", "loss", "gradient", "params", "probe"} <= families
    assert any(r["status"] == "waived" for r in document["results"])
    assert any(r["severity"] == "warning" for r in document["results"])
    sarif = json.loads((workspace / "r.sarif").read_text())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    prints = [r["partialFingerprints"]["alignguardFindingHash/v1"] for r in sarif["runs"][0]["results"]]
    assert len(prints) == len(set(prints))
    cases = ET.parse(workspace / "r.xml").getroot().findall("./testsuite/testcase")
    assert len(cases) == len(document["results"])
