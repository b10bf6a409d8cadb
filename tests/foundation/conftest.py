from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignguard.cli.app import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def write(tmp_path):
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
