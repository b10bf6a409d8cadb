"""Load the reference model files by path, the way alignguard does (models/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def load_by_path(filename: str):
    path = MODELS_DIR / filename
    spec = importlib.util.spec_from_file_location(f"reference_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    sys.path.insert(0, str(MODELS_DIR))  # sibling import of _batches, as the loader allows
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(MODELS_DIR))
    return module


@pytest.fixture(scope="session")
def cmdn():
    return load_by_path("cmdn.py")


@pytest.fixture(scope="session")
def legacy():
    return load_by_path("legacy_energy.py")


@pytest.fixture(scope="session")
def batches():
    return load_by_path("_batches.py")


@pytest.fixture(autouse=True)
def single_thread():
    """These models are tiny: one thread avoids oversubscribing the 2 shared cores (the whole suite
    runs in parallel), which made each step many times slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
