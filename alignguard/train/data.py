"""What the trainer needs from a dataset, and the loaders that feed batches to the device.

A split is anything with `cell_names`, `__len__` and `batch(indices) -> dict of NumPy arrays`
following the batch contract (x float32 (B,4,L), c float32 (B,D+1), y float32 (B,), cell int64,
locus int64, p_true float32 when the truth is known). Whole batches are gathered by index in one
call (no per-example `__getitem__` + collate), which is what keeps the loader ahead of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import numpy as np

from alignguard.errors import DataError

REQUIRED_KEYS = ("x", "c", "y", "cell")


class Split(Protocol):
    cell_names: list[str]

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class Datasets:
    train: Split
    val: Split
    test: Split | None
    kind: str  # "synthetic" | "real" | "arrays"
    description: dict[str, Any] = field(default_factory=dict)  # recorded in run.json
    truth: dict[str, dict[str, float]] = field(default_factory=dict)  # per-cell hidden M*, T* (synthetic)
    panel: dict[str, Any] | None = None  # unseen cell lines with a known truth, no examples (train/panel.py)


class ArraySplit:
    """A split held in memory as equal-length arrays (tests, small data, adapters)."""

    def __init__(self, arrays: dict[str, np.ndarray], cell_names: list[str]):
        lengths = {key: len(value) for key, value in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"split arrays have different lengths: {lengths}",
                            fix="give every column one row per example")
        missing = [key for key in REQUIRED_KEYS if key not in arrays]
        if missing:
            raise DataError(f"split lacks the batch keys {missing}",
                            fix="provide x, c, y and cell (and p_true when the truth is known)")
        self.arrays = {key: np.asarray(value) for key, value in arrays.items()}
        self.cell_names = list(cell_names)

    def __len__(self) -> int:
        return len(self.arrays["y"])

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: value[indices] for key, value in self.arrays.items()}


class _BatchByIndex:
    """torch Dataset whose items are whole batches: dataset[index array] -> dict of tensors."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices) -> dict[str, Any]:
        import torch

        batch = self.split.batch(np.asarray(indices, dtype=np.int64))
        return {key: value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
                for key, value in batch.items()}


def batch_tensors(split: Split, indices) -> dict[str, Any]:
    return _BatchByIndex(split)[indices]


class EpochBatches:
    """Index batches of one epoch: DistributedSampler order (seed + epoch), then batched.

    Deterministic in (seed, epoch, rank, world), so a resumed run replays the same order and
    skips the `skip` batches it already trained on. `limit` draws only that many examples per
    epoch (split evenly over ranks); `shuffle=False` is the fixed order used for evaluation.
    """

    def __init__(self, length: int, batch_size: int, *, epoch: int = 0, seed: int = 0, rank: int = 0,
                 world: int = 1, shuffle: bool = True, drop_last: bool = True, limit: int | None = None,
                 skip: int = 0):
        from torch.utils.data import DistributedSampler

        if shuffle:
            sampler = DistributedSampler(range(length), num_replicas=world, rank=rank, shuffle=True,
                                         seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
            indices = np.fromiter(iter(sampler), dtype=np.int64)
        else:  # evaluation: every example exactly once across ranks, no padding duplicates
            indices = np.arange(rank, length, world, dtype=np.int64)
        if limit is not None:
            indices = indices[: max(1, limit // world)]
        cut = len(indices) - len(indices) % batch_size if drop_last and len(indices) >= batch_size else len(indices)
        self.batches = [indices[i: i + batch_size] for i in range(0, cut, batch_size)][skip:]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)


def make_loader(split: Split, batches: EpochBatches, *, workers: int, pin_memory: bool, seed: int = 0):
    """A DataLoader over whole-batch index arrays. Its own generator: creating an iterator must not
    draw from the global RNG, or a resumed run (which creates it mid-epoch) would drift."""
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(_BatchByIndex(split), sampler=batches, batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=False, generator=torch.Generator().manual_seed(seed),
                      prefetch_factor=4 if workers > 0 else None)


def fixed_subset(length: int, count: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of a split (sorted), or every index when count is None or too large."""
    if count is None or count >= length:
        return np.arange(length, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(length, size=count, replace=False))


class SubsetSplit:
    """A split restricted to some of its rows (evaluation subsets)."""

    def __init__(self, split: Split, rows: np.ndarray):
        self.split, self.rows = split, np.asarray(rows, dtype=np.int64)
        self.cell_names = split.cell_names

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.split.batch(self.rows[indices])


def check_batch(batch: dict[str, Any], where: str) -> None:
    """The batch contract, checked once on the first batch so a wrong dataset fails with a paragraph."""
    missing = [key for key in REQUIRED_KEYS if key not in batch]
    if missing:
        raise DataError(f"batches lack the keys {missing} (found {sorted(batch)})", where=where,
                        fix="the dataset must yield x, c, y and cell (see docs/data.md)")
    rows = {key: int(value.shape[0]) for key, value in batch.items() if hasattr(value, "shape") and value.ndim}
    if len(set(rows.values())) != 1:
        raise DataError(f"batch columns have different numbers of rows: {rows}", where=where,
                        fix="every column needs one row per example")
