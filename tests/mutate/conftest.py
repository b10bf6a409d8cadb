from __future__ import annotations

import pytest

from alignguard.mutate.analysis import analyse
from alignguard.mutate.operators import all_operators
from alignguard.mutate.runner import plan
from mutate_helpers import load


@pytest.fixture(scope="session")
def tiny():
    """(spec, model file, analysis, mutants by id, skipped operators) for the tiny CMDN, strong spec."""
    spec, model_file = load("tiny_strong.yaml", "tiny_cmdn.py")
    analysis = analyse(spec, model_file)
    mutants, skipped, _ = plan(analysis, all_operators())
    return spec, model_file, analysis, {m.id: m for m in mutants}, skipped
