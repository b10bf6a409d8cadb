"""The reports' workspace: the working directory, holding a small model and specs (`cli` and
`write` come from tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
def write(workspace, write):
    """The shared writer, with the workspace as the working directory (tmp_path is the workspace)."""
    return write
