"""action.yml, .pre-commit-hooks.yaml and the example workflow: well-formed, and what they run
is a command line the CLI accepts."""

from __future__ import annotations

import shlex

from ruamel.yaml import YAML

from tests.reports.conftest import HERE

REPO = HERE.parents[1]


def load(path):
    return YAML(typ="safe").load((REPO / path).read_text())


def test_action_is_a_composite_that_uploads_sarif_and_fails_on_findings():
    action = load("action.yml")
    assert action["runs"]["using"] == "composite"
    assert {"spec", "model"} <= {k for k, v in action["inputs"].items() if v.get("required")}
    steps = action["runs"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    check = next(s for s in steps if s.get("id") == "check")
    assert '--output "sarif:$SARIF"' in check["run"] and "--format github" in check["run"]
    assert all(s.get("shell") == "bash" for s in steps if "run" in s)  # composite steps need a shell
    final = steps[-1]
    assert "exit-code != '0'" in final["if"] and 'exit "$CODE"' in final["run"]
    # inputs reach the scripts through env, never spliced into the script text
    for step in steps:
        assert "${{" not in step.get("run", ""), step["name"]


def test_action_command_line_is_accepted(cli, workspace):
    (workspace / "spec.yaml").write_text((REPO / "tests/fixtures/tiny_spec.yaml").read_text())
    check = next(s for s in load("action.yml")["runs"]["steps"] if s.get("id") == "check")
    line = next(line for line in check["run"].replace("\\\n", " ").splitlines() if line.strip().startswith("alignguard"))
    env = {"$SPEC": "spec.yaml", "$MODEL": "model.py", "$FAIL_ON": "error", "$SARIF": "out.sarif", "$ARGS": ""}
    for key, value in env.items():
        line = line.replace(f'"{key}"', value).replace(key, value)
    args = shlex.split(line)[1:]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert (workspace / "out.sarif").is_file()


def test_pre_commit_hooks():
    hooks = load(".pre-commit-hooks.yaml")
    assert {h["id"] for h in hooks} == {"alignguard-check", "alignguard-check-system"}
    for hook in hooks:
        assert hook["entry"] == "alignguard check" and hook["pass_filenames"] is False
        assert hook["language"] in ("python", "system")


def test_example_workflow_grants_code_scanning_and_uses_the_action():
    workflow = load("docs/examples/github-workflow.yml")
    assert workflow["permissions"]["security-events"] == "write"
    steps = workflow["jobs"]["alignment"]["steps"]
    action_step = next(s for s in steps if s.get("uses") == "./")
    assert {"spec", "model"} <= set(action_step["with"])
