"""`.ci/run` runs exactly the test command the README gives a new user."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    test_command = next(c for c in commands if "pytest" in c)
    pytest_call = test_command.split("&& ")[-1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert pytest_call in ci.splitlines()
    assert "torch==2.13.0" in ci and 'pip install --quiet -e ".[test]"' in ci
