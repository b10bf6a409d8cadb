"""The dataset interface the trainer uses: `open_dataset(path)` and `synth_dataset(config, cache_dir)`.

A batch is a dict of tensors (see docs/data.md, "Batch contract"):
  x (B, 4, L) float32 one-hot; c (B, D+1) float32 = [descriptor, accessibility]; y (B,) float32;
  cell (B,) int64; locus (B,) int64; p_true (B,) float32 (synthetic data only).
Batches are assembled from index arrays in one vectorised gather per column, so a DataLoader does
not starve a small CNN; `SplitDataset.__getitems__` lets torch's DataLoader fetch a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from alignguard.errors import DataError

from .config import SynthConfig
from .encoding import one_hot
from .store import Manifest, ShardedColumn, SplitMetrics, Verify, load_manifest

Batch = dict[str, torch.Tensor]


class SplitDataset(Dataset):
    """Map-style dataset over one split's (locus, cell) examples; item i is example i."""

    def __init__(self, root: Path, manifest: Manifest, name: str, descriptors: np.ndarray):
        entry = manifest.splits[name]
        self.name = name
        self.cell_indices = list(entry.cells)
        self._descriptors = descriptors

        def column(shards, key: str) -> ShardedColumn:
            return ShardedColumn(root, shards.columns.get(key, []), shards.rows, manifest.files)

        self._locus = column(entry.examples, "locus")
        self._cell = column(entry.examples, "cell")
        self._y = column(entry.examples, "y")
        self._access = column(entry.examples, "access")
        self._p_true = column(entry.examples, "p_true") if manifest.kind == "synthetic" else None
        self._sequences = column(manifest.loci, "seq")
        self._runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._y)

    def batch(self, index: Sequence[int] | np.ndarray) -> Batch:
        """The batch contract for these example indices (vectorised gather, then one-hot expansion)."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"example index out of range for split {self.name!r} of {len(self)} examples")
        locus = self._locus.take(index).astype(np.int64)
        cell = self._cell.take(index).astype(np.int64)
        access = self._access.take(index).astype(np.float32)
        context = np.concatenate([self._descriptors[cell], access[:, None]], axis=1)
        batch = {
            "x": torch.from_numpy(one_hot(self._sequences.take(locus))),
            "c": torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32)),
            "y": torch.from_numpy(self._y.take(index).astype(np.float32)),
            "cell": torch.from_numpy(cell),
            "locus": torch.from_numpy(locus),
        }
        if self._p_true is not None:
            batch["p_true"] = torch.from_numpy(self._p_true.take(index).astype(np.float32))
        return batch

    def __getitems__(self, index: list[int]) -> Batch:  # DataLoader's batched fetch
        return self.batch(index)

    def __getitem__(self, i: int) -> Batch:
        return {key: value[0] for key, value in self.batch([i]).items()}

    # Whole columns as NumPy arrays, for evaluation (per-cell AUPR, calibration) without batching.
    def labels(self) -> np.ndarray:
        return self._y.read_all("u1").astype(np.int64)

    def cells(self) -> np.ndarray:
        return self._cell.read_all("i4").astype(np.int64)

    def loci(self) -> np.ndarray:
        return self._locus.read_all("i8").astype(np.int64)

    def p_true(self) -> np.ndarray | None:
        return None if self._p_true is None else self._p_true.read_all("f4")

    def pair_indices(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n pairs of example indices with the same locus and different cell lines."""
        order, starts, counts = self._locus_runs()
        if len(starts) == 0:
            raise DataError(
                f"split {self.name!r} has no locus labelled in two cell lines, so no pairs can be drawn",
                where=f"split {self.name}",
                fix="use a split with at least two cell lines (synthetic: cells >= 2)",
            )
        run = rng.integers(0, len(starts), size=n)
        first = rng.integers(0, counts[run])
        # A different member of the same run: shift by 1..count-1 around the run.
        second = (first + 1 + rng.integers(0, counts[run] - 1)) % counts[run]
        return order[starts[run] + first], order[starts[run] + second]

    def _locus_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Examples sorted by locus, with the start and size of each locus with >= 2 examples."""
        if self._runs is None:
            loci = self.loci()
            order = np.argsort(loci, kind="stable")
            sorted_loci = loci[order]
            boundaries = np.flatnonzero(np.diff(sorted_loci)) + 1
            starts = np.concatenate([[0], boundaries]).astype(np.int64)
            counts = np.diff(np.concatenate([starts, [len(loci)]]))
            paired = counts >= 2
            self._runs = (order, starts[paired], counts[paired])
        return self._runs


def collate(items: Batch | list[Batch]) -> Batch:
    """Collate for DataLoader: a batch from `__getitems__` passes through; single examples are stacked."""
    if isinstance(items, dict):
        return items
    if not items:
        raise ValueError("cannot collate an empty list of examples")
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class BenchmarkData:
    """An opened dataset directory (synthetic or real): splits, cell lines, reference metrics."""

    def __init__(self, path: Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest
        descriptors = ShardedColumn(self.path, [manifest.cells_file], [len(manifest.cell_lines)], manifest.files)
        self.descriptors = np.asarray(descriptors.read_all(), dtype=np.float32)
        self._splits: dict[str, SplitDataset] = {}

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def window(self) -> int:
        return self.manifest.window

    @property
    def descriptor_dim(self) -> int:
        return self.manifest.descriptor_dim

    @property
    def context_dim(self) -> int:
        """Width of c: D descriptor columns plus the accessibility column."""
        return self.manifest.descriptor_dim + 1

    @property
    def split_names(self) -> list[str]:
        return list(self.manifest.splits)

    @property
    def truth(self) -> dict | None:
        """Hidden ground-truth parameters (synthetic data only), e.g. per-cell M* and T*."""
        return self.manifest.truth

    def _entry(self, name: str):
        if name not in self.manifest.splits:
            raise DataError(
                f"dataset has no split {name!r}",
                where=str(self.path),
                fix=f"use one of: {', '.join(self.manifest.splits)}",
            )
        return self.manifest.splits[name]

    def split(self, name: str) -> SplitDataset:
        self._entry(name)
        if name not in self._splits:
            self._splits[name] = SplitDataset(self.path, self.manifest, name, self.descriptors)
        return self._splits[name]

    def cell_lines(self, split: str | None = None) -> list[str]:
        """All cell-line names (index = the `cell` value in batches), or those of one split."""
        if split is None:
            return list(self.manifest.cell_lines)
        return [self.manifest.cell_lines[i] for i in self._entry(split).cells]

    def bayes(self, split: str) -> SplitMetrics:
        """Pooled reference metrics: positive rate always; Bayes AUPR/log-loss where p_true is known."""
        return self._entry(split).metrics

    def bayes_per_cell(self, split: str) -> dict[str, SplitMetrics]:
        return dict(self._entry(split).per_cell)

    def pairs(self, split: str, n: int, rng: np.random.Generator | int | None = None) -> tuple[Batch, Batch]:
        """Two aligned batches: row i of each has the same locus (same x) in two different cell lines."""
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        dataset = self.split(split)
        first, second = dataset.pair_indices(n, generator)
        return dataset.batch(first), dataset.batch(second)

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> DataLoader:
        """A DataLoader yielding the batch contract; shuffling is reproducible from `seed`."""
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.split(split),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            collate_fn=collate,
            generator=generator,
            persistent_workers=num_workers > 0,
        )


def open_dataset(path: str | Path, *, verify: Verify = "full") -> BenchmarkData:
    """Open a dataset directory, checking every shard's size and (verify='full') SHA-256 first."""
    path = Path(path)
    return BenchmarkData(path, load_manifest(path, verify))


def synth_dataset(
    config: SynthConfig | None = None, cache_dir: str | Path | None = None, *, verify: Verify = "full"
) -> BenchmarkData:
    """The synthetic dataset for `config`, generated once and reused from `cache_dir/synth-<hash>`.

    cache_dir defaults to $ALIGNGUARD_CACHE/data, else .alignguard-cache/data in the working directory.
    """
    from .synth import cached_generate

    path = cached_generate(config or SynthConfig(), cache_dir, verify=verify)
    return open_dataset(path, verify="size")  # cached_generate has just verified it
