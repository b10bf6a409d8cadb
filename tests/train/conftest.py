"""Tiny, fast fixtures for the trainer: a small CMDN, in-memory splits with a known truth, a runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
TINY_MODEL = HERE / "models" / "tiny_cmdn.py"
TINY_SPEC = HERE / "specs" / "tiny_cmdn.yaml"
BROKEN_MODEL = HERE / "models" / "tiny_broken.py"


def tiny_split(n: int, cells: list[int], seed: int, length: int = 32):
    """Planted world: y ~ Bernoulli(sigmoid((M_c * U(x) + B) / T)), U = count of 'A' (scaled)."""
    from alignguard.train.data import ArraySplit

    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 4, size=(n, length))
    x = np.eye(4, dtype=np.float32)[bases].transpose(0, 2, 1).copy()
    cell = rng.choice(cells, size=n).astype(np.int64)
    descriptors = np.random.default_rng(99).normal(size=(8, 8)).astype(np.float32)
    access = rng.random(n).astype(np.float32)
    c = np.concatenate([descriptors[cell], access[:, None]], axis=1).astype(np.float32)
    energy = (bases == 0).sum(1) / 8.0 - 1.0
    m = 1.0 + 0.5 * np.tanh(descriptors[cell, 0])
    p_true = 1 / (1 + np.exp(-(m * 3 * energy + 2 * (access - 0.5) - 0.5)))
    y = (rng.random(n) < p_true).astype(np.float32)
    arrays = {"x": x, "c": c, "y": y, "cell": cell, "locus": np.arange(n, dtype=np.int64),
              "p_true": p_true.astype(np.float32)}
    return ArraySplit(arrays, [f"cell{i}" for i in range(8)])


def tiny_datasets():
    from alignguard.train.data import Datasets

    return Datasets(train=tiny_split(384, [0, 1, 2, 3], 1), val=tiny_split(192, [4, 5, 6], 2),
                    test=tiny_split(192, [7, 6], 3), kind="arrays",
                    description={"kind": "arrays"}, truth={f"cell{i}": {"M": 1.0 + 0.1 * i} for i in range(8)})


TINY_CONFIG = {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "monitor.every_steps": 4,
               "monitor.live": "off", "monitor.tensorboard": False, "optim.warmup_steps": 2,
               "monitor.probe_examples": 120, "threads": 1}


def make_trainer(run_dir: Path, overrides: dict | None = None, model=TINY_MODEL, datasets=None, hooks=None,
                 console=None):
    """A Trainer on the tiny model and splits (no gate: the trainer itself is under test)."""
    from rich.console import Console

    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.loader import load_spec
    from alignguard.train.config import build_config, curriculum_from_model_file
    from alignguard.train.trainer import Trainer

    spec = load_spec(TINY_SPEC)
    model_file = load_model_file(model, spec.entry_points)
    stages = curriculum_from_model_file(model_file.module.CURRICULUM, str(model))
    config = build_config(None, {**TINY_CONFIG, **(overrides or {})}, stages)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    return Trainer(spec=spec, model_file=model_file, config=config, run_dir=run_dir,
                   datasets=datasets or tiny_datasets(), console=console or Console(width=120, record=True),
                   model_sha256="test", spec_sha256="test", hooks=hooks)


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"
