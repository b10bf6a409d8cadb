"""Datasets: the built-in benchmark with a known Bayes ceiling, real-data import, one interface.

    from alignguard.data import open_dataset, synth_dataset, SynthConfig
    data = synth_dataset(SynthConfig(seed=0))          # generated once, then cached
    batch = data.split("train").batch([0, 1, 2])       # x, c, y, cell, locus, p_true
    data.bayes("test").bayes_aupr                      # the ceiling for the held-out split

Names are imported lazily so `import alignguard.data` does not import torch (docs/data.md).
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "SynthConfig": "config",
    "RealDataConfig": "config",
    "BenchmarkData": "dataset",
    "SplitDataset": "dataset",
    "collate": "dataset",
    "open_dataset": "dataset",
    "synth_dataset": "dataset",
    "generate": "synth",
    "cached_generate": "synth",
    "convert_real": "real",
    "load_manifest": "store",
    "Manifest": "store",
    "SplitMetrics": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'alignguard.data' has no attribute {name!r}")
