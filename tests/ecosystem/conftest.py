"""Shared fixtures for the ecosystem integrations: a small aligned model and spec, and how the
pytest plugin is loaded in a pytester run (by its entry point once installed, else by -p)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

import alignguard.checks.catalogue  # noqa: F401  (imports every check: torch, numpy)

# pytester's in-process runs drop the modules they imported when they end, and numpy cannot be
# imported twice in one process: import the checks (torch, numpy) before any pytester exists.

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY_SPEC = (FIXTURES / "tiny_spec.yaml").read_text()
TINY_MODEL = (FIXTURES / "tiny_model.py").read_text()
# the tiny model with a component forward never calls: component.called fails
MISALIGNED_SPEC = TINY_SPEC + "  side:\n    module: unused\n"
PAIR_CONFIG = """
[tool.alignguard]
fail-on = "error"

[[tool.alignguard.pairs]]
spec = "specs/tiny.yaml"
model = "models/tiny.py"
"""


def plugin_installed() -> bool:
    return any(ep.value == "alignguard.pytest_plugin" for ep in entry_points(group="pytest11"))


@pytest.fixture
def plugin_args() -> list[str]:
    """`-p alignguard.pytest_plugin` unless the installed entry point already loads it."""
    return [] if plugin_installed() else ["-p", "alignguard.pytest_plugin"]


@pytest.fixture
def project(tmp_path: Path):
    """Write a project (pyproject.toml, specs/tiny.yaml, models/tiny.py) under tmp_path."""

    def write(spec: str = TINY_SPEC, config: str = PAIR_CONFIG, root: Path = tmp_path) -> Path:
        (root / "specs").mkdir(parents=True, exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        (root / "specs" / "tiny.yaml").write_text(spec)
        (root / "models" / "tiny.py").write_text(TINY_MODEL)
        (root / "pyproject.toml").write_text(config)
        return root

    return write
