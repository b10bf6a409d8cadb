"""The command line as users of ruff, pytest and mypy expect it: --version, completion, help with
real defaults, one meaning per short flag, [tool.alignguard] discovery, concise output,
--statistics, --exit-zero, --quiet, capped GitHub annotations, SARIF/JUnit for dashboards."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alignguard.results import CheckResult, Report, Status, Where
from alignguard.cli.app import app
from alignguard.report.options import RenderOptions
from tests.ecosystem.conftest import MISALIGNED_SPEC, TINY_MODEL, TINY_SPEC

PAIRS = """
[tool.alignguard]
{extra}
[[tool.alignguard.pairs]]
spec = "specs/good.yaml"
model = "models/tiny.py"

[[tool.alignguard.pairs]]
spec = "specs/bad.yaml"
model = "models/tiny.py"
"""


def invoke(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, prog_name="alignguard")


def commands():
    root = typer.main.get_command(app)

    def walk(command, path):
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(root, []))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with a good and a bad pair configured; the working directory."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "specs" / "good.yaml").write_text(TINY_SPEC)
    (tmp_path / "specs" / "bad.yaml").write_text(MISALIGNED_SPEC)
    (tmp_path / "models" / "tiny.py").write_text(TINY_MODEL)
    (tmp_path / "pyproject.toml").write_text(PAIRS.format(extra=""))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def test_version():
    from alignguard import __version__

    for flag in ("--version", "-V"):
        result = invoke(flag)
        assert result.exit_code == 0 and result.output == f"alignguard {__version__}\n"


def test_completion_script_for_bash(monkeypatch):
    # typer reads SHELL from the process tree unless told not to; a test run with no shell among its
    # ancestors (a detached job, some CI runners) would ignore "bash" and fail to detect one
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0 and "_ALIGNGUARD_COMPLETE=complete_bash" in result.output


def test_every_option_has_help_that_survives_rendering_and_says_its_default():
    for path, command in commands():
        options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
        rendered = "".join(invoke(*path, "--help").output.split())  # wrapping may break at a hyphen
        for option in options:
            name = f"{' '.join(path)} {option.opts[0]}"
            assert option.help, f"{name} has no help"
            assert "".join(option.help.split()) in rendered, f"{name}: help text mangled in --help"
            if option.default is None and not option.is_flag and not option.multiple and not option.required:
                assert "[default:" in option.help, f"{name} defaults to None without saying what that means"


def test_each_short_flag_means_one_thing_everywhere():
    meanings: dict[str, set[str]] = {}
    for _, command in commands():
        for option in command.params:
            if option.param_type_name == "option":
                long = next((o for o in option.opts if o.startswith("--")), option.opts[0])
                for short in (o for o in option.opts if len(o) == 2):
                    meanings.setdefault(short, set()).add(long)
    assert {short: longs for short, longs in meanings.items() if len(longs) > 1} == {}
    assert meanings["-o"] == {"--output"} and meanings["-f"] == {"--format"}


def test_no_arguments_checks_every_configured_pair_worst_exit_wins(repo):
    result = invoke("check", "--output-format", "concise")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "specs/bad.yaml:" in result.output and "component.called [component side]" in result.output
    assert lines[-1] == "2 spec/model pairs: 1 aligned, 1 misaligned"
    assert sum(line.startswith(("aligned:", "misaligned:")) for line in lines) == 2


def test_configuration_is_found_from_a_subfolder_and_the_command_line_wins(repo):
    (repo / "pyproject.toml").write_text(PAIRS.format(extra='fail-on = "warning"\noutput-format = "concise"'))
    (repo / "specs" / "bad.yaml").write_text(MISALIGNED_SPEC + "severity:\n  component.*: warning\n")
    (repo / "src").mkdir()
    import os

    os.chdir(repo / "src")
    assert invoke("check").exit_code == 1  # the config's fail-on warning counts the warning
    result = invoke("check", "--fail-on", "error")
    assert result.exit_code == 0, result.output  # the command line wins
    assert "(warning)" in result.output and "../specs/bad.yaml" not in result.output


def test_several_pairs_merge_into_one_sarif_and_refuse_json(repo):
    result = invoke("check", "-f", "sarif")
    assert result.exit_code == 1
    runs = json.loads(result.stdout)["runs"]
    assert [run["automationDetails"]["id"] for run in runs] == ["alignguard/tiny/", "alignguard/tiny/"]
    refused = invoke("check", "-f", "json")
    assert refused.exit_code == 2 and "holds one report" in refused.output


def test_a_spec_without_a_model_and_no_configuration_are_usage_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("check")
    assert result.exit_code == 2 and "no SPEC and MODEL given" in result.output and "[[tool.alignguard.pairs]]" in result.output
    result = invoke("check", "specs/x.yaml")
    assert result.exit_code == 2 and "without a MODEL" in result.output


def test_quiet_exit_zero_and_statistics(repo):
    good = invoke("check", "-q", "specs/good.yaml", "models/tiny.py")
    assert good.exit_code == 0 and good.output == ""
    bad = invoke("check", "-q", "specs/bad.yaml", "models/tiny.py")
    assert bad.exit_code == 1
    assert bad.output.splitlines()[0].startswith("specs/bad.yaml:") and len(bad.output.splitlines()) == 2
    assert invoke("check", "--exit-zero", "specs/bad.yaml", "models/tiny.py").exit_code == 0
    assert invoke("check", "--exit-zero", "specs/absent.yaml", "models/tiny.py").exit_code == 2
    stats = invoke("check", "--statistics", "-q", "specs/bad.yaml", "models/tiny.py")
    assert stats.output.splitlines()[-1] == "1  component.called  [error]"


def test_concise_lines_point_at_repository_paths_from_a_subfolder(repo, monkeypatch):
    monkeypatch.chdir(repo / "specs")
    result = invoke("check", "--output-format", "concise", "bad.yaml", "../models/tiny.py")
    finding = next(line for line in result.output.splitlines() if "component.called" in line)
    assert re.match(r"specs/bad\.yaml:\d+:1: component\.called \[component side\] ", finding), finding


def test_sarif_uris_are_relative_to_the_git_top_level(repo, monkeypatch):
    monkeypatch.chdir(repo / "models")
    result = invoke("check", "-f", "sarif", "../specs/bad.yaml", "tiny.py")
    run = json.loads(result.stdout)["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.resolve().as_uri() + "/"
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"] for loc in r["locations"]}
    assert uris and all(uri.startswith(("specs/", "models/")) for uri in uris), uris


def many_findings(count: int) -> Report:
    results = [CheckResult("component.called", f"component c{i}", Status.FAIL, "called", "never called",
                           where=Where(module=f"c{i}")) for i in range(count)]
    results += [CheckResult("flow.forbidden", "flow c -> z", Status.FAIL, "no path", "a path",
                            where=Where(module=m, node=m)) for m in ("encoder", "encoder", "head")]
    return Report("big", "spec.yaml", "model.py", results,
                  timings={"component": 1.2, "flow": 0.3, "total": 2.0})


def test_github_annotations_stop_at_ten_with_a_notice_and_the_summary_lists_all(tmp_path):
    from alignguard.report import github

    text = github.render(many_findings(14), RenderOptions())
    lines = text.splitlines()
    assert sum(line.startswith("::error") for line in lines) == 10
    assert lines[-1].startswith("::notice title=alignguard%3A more findings::7 more errors not annotated")
    summary = tmp_path / "summary.md"
    github.write_step_summary(many_findings(14), RenderOptions(), {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text().count("component.called") >= 14


def test_junit_names_are_unique_times_measured_and_stamped():
    from alignguard.report import junit

    root = ET.fromstring(junit.render(many_findings(2), RenderOptions()).split("\n", 1)[1])
    cases = list(root.iter("testcase"))
    keys = [(case.get("classname"), case.get("name")) for case in cases]
    assert len(set(keys)) == len(keys) == 5
    assert ("flow c -> z", "flow.forbidden (encoder)") in keys and ("flow c -> z", "flow.forbidden (encoder) #2") in keys
    assert [float(case.get("time")) for case in cases] == [0.6, 0.6, 0.1, 0.1, 0.1]
    suite = root.find("testsuite")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp")) and suite.get("time") == "2.000"


def test_junit_times_are_each_results_own_and_add_up_to_the_checks_wall_time():
    import time

    from alignguard.api import load, open_context, run_checks
    from alignguard.report import junit

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    spec, model_file = load(fixtures / "tiny_spec.yaml", fixtures / "tiny_model.py")
    context = open_context(spec, model_file)
    start = time.perf_counter()
    report = run_checks(context, spec_path=str(fixtures / "tiny_spec.yaml"))
    wall = time.perf_counter() - start
    seconds = [result.seconds for result in report.results]
    assert all(s is not None and s >= 0 for s in seconds) and len(set(seconds)) > 1
    assert 0.8 * wall <= sum(seconds) <= wall  # only severities and waivers run outside the timed checks
    root = ET.fromstring(junit.render(report, RenderOptions()).split("\n", 1)[1])
    times = [float(case.get("time")) for case in root.iter("testcase")]
    assert times == [round(s, 3) for s in seconds] and len(set(times)) > 1


def test_progress_shows_on_a_terminal_after_a_delay_only():
    import io
    import time

    from rich.console import Console

    from alignguard.cli.progress import progress

    shown, quick, piped = io.StringIO(), io.StringIO(), io.StringIO()
    with progress("checking", console=Console(file=shown, force_terminal=True), after=0.05):
        time.sleep(0.5)
    with progress("checking", console=Console(file=quick, force_terminal=True), after=5):
        pass
    with progress("checking", console=Console(file=piped, force_terminal=False), after=0):
        time.sleep(0.2)
    assert "checking …" in shown.getvalue() and quick.getvalue() == "" and piped.getvalue() == ""


def test_init_names_the_schema_on_its_first_line_and_writes_it_beside(tmp_path, monkeypatch):
    import jsonschema
    from ruamel.yaml import YAML

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(TINY_MODEL)
    result = invoke("init", "model.py", "-o", "specs/starter.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "specs" / "starter.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=alignguard-spec.schema.json"
    schema = json.loads((tmp_path / "specs" / "alignguard-spec.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(YAML(typ="safe").load(text))), schema)
    assert invoke("check", "specs/starter.yaml", "model.py").exit_code in (0, 1)  # the modeline is a comment



def test_the_configured_timeout_stops_a_hanging_model_and_the_command_line_wins(repo):
    (repo / "models" / "slow.py").write_text(TINY_MODEL.replace(
        "def build_model():\n", "def build_model():\n    import time\n    time.sleep(3)\n"))
    (repo / "pyproject.toml").write_text(PAIRS.format(extra="timeout = 1"))
    stopped = invoke("check", "specs/good.yaml", "models/slow.py")
    assert stopped.exit_code == 2 and "Traceback" not in stopped.output, stopped.output
    assert invoke("check", "--timeout", "0", "specs/good.yaml", "models/slow.py").exit_code == 0  # 0: no limit


def test_every_command_that_prints_a_result_has_format_json():
    printing = {("check",), ("mutate",), ("evaluate",), ("data", "synth"), ("data", "convert"), ("data", "inspect")}
    found = set()
    for path, command in commands():
        if tuple(path) in printing:
            option = next(p for p in command.params if "--format" in p.opts)
            assert "-f" in option.opts
            help_text = " ".join(invoke(*path, "--help").stdout.split())
            assert re.search(r"-f, --format [^ ]*json", help_text) or "json" in (option.help or ""), path
            found.add(tuple(path))
    assert found == printing
