"""Shared fixtures: a workspace (the working directory) holding a small model and specs, and
the CLI invoked in-process."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignguard.cli.app import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HERE = Path(__file__).resolve().parent
SARIF_SCHEMA = HERE / "sarif-schema-2.1.0.json"

# The tiny fixture model with one extra component that forward never calls: one FAIL.
MISALIGNED_SPEC = """
version: 1
name: gate
inputs:
  x: {role: invariant}
  c: {role: context}
symbols:
  h: h
  logit: {output: logit}
components:
  encoder:
    module: encoder
    reaches: [h, logit]
  head:
    module: head
    reaches: [logit]
  side:
    module: unused
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A repository-like folder that is the working directory (annotations are relative to it)."""
    shutil.copy(FIXTURES / "tiny_model.py", tmp_path / "model.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


@pytest.fixture
def write(workspace):
    def _write(name: str, text: str) -> Path:
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke
