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
    assert action["inputs"]["spec"]["default"] == action["inputs"]["model"]["default"] == ""  # [tool.alignguard]
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


def run_action_check(workspace, **env):
    """The action's check step, run by bash as the runner would (alignguard from this environment)."""
    import os
    import subprocess
    import sys

    check = next(s for s in load("action.yml")["runs"]["steps"] if s.get("id") == "check")
    output = workspace / "github_output"
    output.write_text("")  # the runner gives each step a fresh file
    variables = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
                 "GITHUB_OUTPUT": str(output), "SPEC": "", "MODEL": "", "FAIL_ON": "", "SARIF": "out.sarif",
                 "ARGS": "", **env}
    variables.pop("GITHUB_STEP_SUMMARY", None)
    result = subprocess.run(["bash", "-c", check["run"]], cwd=workspace, env=variables, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # the step records the code and lets the last step fail
    return output.read_text(), result.stdout


def test_action_command_line_is_accepted(workspace):
    (workspace / "spec.yaml").write_text((REPO / "tests/fixtures/tiny_spec.yaml").read_text())
    recorded, _ = run_action_check(workspace, SPEC="spec.yaml", MODEL="model.py", FAIL_ON="error")
    assert recorded == "exit-code=0\n" and (workspace / "out.sarif").is_file()


def test_action_without_spec_and_model_checks_the_configured_pairs(workspace):
    (workspace / "spec.yaml").write_text((REPO / "tests/fixtures/tiny_spec.yaml").read_text())
    (workspace / "pyproject.toml").write_text('[[tool.alignguard.pairs]]\nspec = "spec.yaml"\nmodel = "model.py"\n')
    recorded, stdout = run_action_check(workspace)
    assert recorded == "exit-code=0\n" and "aligned" in stdout
    (workspace / "pyproject.toml").unlink()
    recorded, _ = run_action_check(workspace)
    assert recorded == "exit-code=2\n"  # no pairs anywhere: a usage error, and the job fails


def test_pre_commit_hooks():
    hooks = load(".pre-commit-hooks.yaml")
    assert {h["id"] for h in hooks} == {"alignguard-check", "alignguard-check-system"}
    for hook in hooks:
        assert hook["entry"] == "alignguard check --quiet" and hook["pass_filenames"] is False
        assert "args" not in hook  # the [tool.alignguard] pairs, unless the user's config passes SPEC MODEL
        assert hook["language"] in ("python", "system")


def test_example_workflow_grants_code_scanning_and_uses_the_action():
    workflow = load("docs/examples/github-workflow.yml")
    assert workflow["permissions"]["security-events"] == "write"
    steps = workflow["jobs"]["alignment"]["steps"]
    action_step = next(s for s in steps if s.get("uses") == "./")
    assert {"spec", "model"} <= set(action_step["with"])
