"""Helpers the mutation tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from alignguard.modelfile.loader import forward_inputs, load_model_file
from alignguard.spec.loader import load_spec

HERE = Path(__file__).resolve().parent
MODELS, SPECS = HERE / "models", HERE / "specs"


def load(spec_name: str, model_name: str):
    spec = load_spec(SPECS / spec_name)
    return spec, load_model_file(MODELS / model_name, spec.entry_points)


def by_prefix(mutants: dict, prefix: str):
    found = [m for mid, m in mutants.items() if mid.startswith(prefix)]
    assert len(found) == 1, f"{prefix}: {sorted(mutants)}"
    return found[0]


def forward(model_file, model, batch_size: int = 16, seed: int = 0, train: bool = True, **override):
    batch = model_file.example_batch(batch_size, seed)
    batch.update(override)
    model.train(train)
    return model(**forward_inputs(model, batch)), batch


def build(model_file, mutant=None, seed: int = 0):
    torch.manual_seed(seed)
    source = mutant.model_file(model_file) if mutant else model_file
    return source.build_model(), source
