"""Where the trainer's splits come from: a dataset directory (`--data`) or the built-in synthetic
benchmark, generated once and cached (alignguard.data). Both go through `alignguard.data`'s one
dataset interface; the trainer sees them as `Datasets(train, val, test)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alignguard.errors import DataError, UsageError
from alignguard.train.config import DataConfig
from alignguard.train.data import Datasets
from alignguard.train.distributed import DistInfo, barrier


class BenchmarkSplit:
    """One split of an `alignguard.data` dataset; `cell` in its batches indexes every cell line."""

    def __init__(self, data, name: str):
        self.name = name
        self.dataset = data.split(name)
        self.cell_names = data.cell_lines()

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: np.ndarray) -> dict[str, Any]:
        return self.dataset.batch(indices)


def open_benchmark(config: DataConfig, dist: DistInfo = DistInfo(), verify: str = "full"):
    """The opened dataset. Rank 0 generates a missing synthetic cache; the other ranks wait for it."""
    from pydantic import ValidationError

    from alignguard.data.config import SynthConfig
    from alignguard.data.dataset import open_dataset, synth_dataset

    if config.path is not None:
        return open_dataset(config.path, verify=verify)
    try:
        synth = SynthConfig(**config.synth)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        raise UsageError(
            f"data.synth is not a valid synthetic-benchmark config: {'.'.join(map(str, first['loc']))}: "
            f"{first['msg']}", where="training config, data.synth",
            fix="use the SynthConfig fields documented in docs/data.md (e.g. n_loci, window, cells_train)",
        ) from None
    if dist.is_main:
        data = synth_dataset(synth, config.cache_dir, verify=verify)
        barrier(dist)
        return data
    barrier(dist)
    return synth_dataset(synth, config.cache_dir, verify="size")


def load_datasets(config: DataConfig, dist: DistInfo = DistInfo()) -> tuple[Datasets, Any]:
    data = open_benchmark(config, dist)
    for name in ("train", "val"):
        if name not in data.split_names:
            raise DataError(f"the dataset has no '{name}' split (it has {', '.join(data.split_names)})",
                            where=str(data.path), fix="build the dataset with train, val and test splits")
    splits = {name: BenchmarkSplit(data, name) for name in ("train", "val", "test") if name in data.split_names}
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"the '{name}' split is empty", where=str(data.path),
                            fix="give the split some loci and cell lines (see docs/data.md)")
    description = {
        "kind": data.kind, "path": str(data.path), "window": data.window, "context_dim": data.context_dim,
        "config_hash": data.manifest.config_hash,
        "splits": {name: {"examples": len(split), "cell_lines": data.cell_lines(name),
                          "reference": data.bayes(name).model_dump()} for name, split in splits.items()},
    }
    datasets = Datasets(train=splits["train"], val=splits["val"], test=splits.get("test"), kind=data.kind,
                        description=description, truth=cell_truth(data), panel=truth_panel(data))
    return datasets, data


def _access_slope(data) -> float | None:
    """The slope of log T* in accessibility (multiplicative truth), 0 (additive), None (unknown)."""
    from alignguard.data.groundtruth import LOG_T_ACCESS_SCALE

    truth = getattr(data, "truth", None) or {}
    config = getattr(getattr(data, "manifest", None), "config", None) or {}
    if truth.get("mechanism") == "multiplicative" and isinstance(config.get("access_effect"), (int, float)):
        return LOG_T_ACCESS_SCALE * float(config["access_effect"])
    return 0.0 if truth.get("mechanism") == "additive" else None


def truth_panel(data) -> dict[str, Any] | None:
    """The manifest's panel of unseen cell lines (descriptors, M*, T*(c, 1/2)) with the slope of log T*,
    or None (real data, a dataset written before the panel existed, a constant M* as under the additive
    truth: nothing to recover)."""
    truth = getattr(data, "truth", None) or {}
    panel = truth.get("panel") if isinstance(truth, dict) else None
    slope = _access_slope(data)
    if not isinstance(panel, dict) or slope is None or len(panel.get("M") or ()) < 3:
        return None
    if float(np.ptp(np.asarray(panel["M"], dtype=np.float64))) == 0.0:
        return None
    return {**panel, "T_access_slope": slope}


def cell_truth(data) -> dict[str, dict[str, float]]:
    """Per-cell hidden parameters of a synthetic dataset (M*, T* at half accessibility, and the slope of
    log T* in accessibility, T*(c, a) = T*(c, 1/2)·exp(-slope·(a - 1/2))), else {}."""
    truth = getattr(data, "truth", None) or {}
    cells = truth.get("cells") if isinstance(truth, dict) else None
    if not isinstance(cells, dict):
        return {}
    slope = _access_slope(data)
    result = {name: {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
              for name, values in cells.items() if isinstance(values, dict)}
    if slope is not None:
        for values in result.values():
            values["T_access_slope"] = slope
    return result
