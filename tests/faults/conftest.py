"""Fault injection: hostile or careless inputs, exits, hangs, prints, damaged runs.

Every test states the documented exit code and that the message is located; `run_cli` keeps
standard output and standard error apart, because a machine-readable report must stay clean.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignguard.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny_model.py"
TINY_SPEC = ROOT / "tests" / "fixtures" / "tiny_spec.yaml"
TRAIN_MODEL = ROOT / "tests" / "train" / "models" / "tiny_cmdn.py"
TRAIN_SPEC = ROOT / "tests" / "train" / "specs" / "tiny_cmdn.yaml"
TINY_DATA = {"n_loci": 240, "window": 32, "cells_train": 3, "cells_val": 2, "cells_test": 2,
             "locus_blocks": 6, "val_blocks": 1, "test_blocks": 1, "positive_rate": 0.3}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args) -> Outcome:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the CLI raised {result.exception!r} instead of exiting") from result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def assert_no_traceback(outcome: Outcome) -> None:
    assert "Traceback (most recent call last)" not in outcome.text, outcome.text


def model_variant(tmp_path: Path, name: str, replace: dict[str, str], prefix: str = "",
                  base: Path = TINY_MODEL) -> Path:
    """The tiny model file with text replaced (each replacement must apply)."""
    text = base.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / f"{name}.py"
    path.write_text(prefix + text)
    return path


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture(scope="session")
def train_config(tmp_path_factory) -> Path:
    """A tiny training run on a tiny synthetic benchmark (generated once per session)."""
    folder = tmp_path_factory.mktemp("faults-train")
    config = {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "threads": 1,
              "optim": {"warmup_steps": 2},
              "monitor": {"every_steps": 5, "live": "off", "tensorboard": False, "probe_examples": 60},
              "data": {"synth": TINY_DATA, "cache_dir": str(folder / "cache")}}
    path = folder / "tiny.yaml"
    path.write_text(json.dumps(config))
    return path
