"""Fixtures every test folder shares: the CLI invoked in-process, a file writer, the tiny fixture model.

Folder conftests add only what is theirs (datasets in data/, the trainer's tiny world in train/,
the reports' working-directory workspace in reports/).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def cli():
    """`cli(*args, env=None)`: run `alignguard ARGS` in-process (typer's CliRunner)."""
    from typer.testing import CliRunner

    from alignguard.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke


@pytest.fixture
def write(tmp_path):
    """`write(name, text)`: a dedented file under the test's tmp_path, folders created."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture
def tiny_model() -> Path:
    return FIXTURES / "tiny_model.py"


@pytest.fixture
def tiny_spec() -> Path:
    return FIXTURES / "tiny_spec.yaml"
