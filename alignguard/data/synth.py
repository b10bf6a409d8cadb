"""The built-in benchmark generator: `generate(SynthConfig, out)` writes a dataset directory.

Loci are generated shard by shard (config.shard_loci at a time) with one random stream per
(purpose, shard), so the output is a deterministic function of the config and peak memory does not
grow with n_loci. Within a shard every locus gets a value in every cell line (one consistent
"world"); splits are views of that grid: (locus blocks) x (cell lines).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import alignguard
from alignguard.errors import DataError

from .config import SynthConfig
from .groundtruth import (
    CellTruth,
    Energy,
    HiddenMap,
    accessibility_logits,
    binding_logits,
    calibrate_baselines,
    expit,
    plant,
    sample_background,
    target_rates,
)
from .metrics import split_metrics
from .store import FORMAT_NAME, FORMAT_VERSION, MANIFEST, DatasetWriter, ShardSet, Verify, load_manifest

CALIBRATION_LOCI = 4096
DEFAULT_CACHE = Path(".alignguard-cache") / "data"
# Independent random streams, so e.g. adding a co-factor does not change the cell descriptors.
STREAM_MAP, STREAM_CELLS, STREAM_CALIBRATION, STREAM_BLOCKS = 1, 2, 3, 4
STREAM_LOCI, STREAM_CONTEXT, STREAM_LABELS = 5, 6, 7
STREAM_PANEL = 8


def _rng(config: SynthConfig, stream: int, shard: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, shard])


@dataclass(frozen=True)
class World:
    """Everything fixed before any locus is drawn: motif energy, cells and their hidden truth, splits."""

    config: SynthConfig
    energy: Energy
    cell_names: list[str]
    descriptors: np.ndarray  # (n_cells, D)
    truth: CellTruth  # with calibrated baselines beta0(c)
    targets: np.ndarray  # pi(c), each cell line's expected positive rate
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (block ids, cell ids)
    panel_descriptors: np.ndarray  # (truth_panel, D): unseen cell lines with a known truth, no examples
    panel: CellTruth  # their M*, t(c) (no baselines: they have no examples to calibrate on)

    def block_of(self, loci: np.ndarray) -> np.ndarray:
        return (loci * self.config.locus_blocks // self.config.n_loci).astype(np.int16)


def _draw_sequences(config: SynthConfig, energy: Energy, count: int, rng: np.random.Generator) -> np.ndarray:
    codes = sample_background(config, count, rng)
    plant(codes, energy.motif, config.plant_rate, rng)
    if energy.cofactor is not None:
        plant(codes, energy.cofactor, config.cofactor_plant_rate, rng)
    return codes


def _draw_context(config: SynthConfig, truth: CellTruth, count: int, rng: np.random.Generator) -> np.ndarray:
    openness = rng.normal(size=count)  # rho_l: how open this locus is in general
    noise = rng.normal(size=(count, len(truth.m)))  # eta[l, c]: cell-specific deviation
    return accessibility_logits(openness, truth, noise)


@dataclass(frozen=True)
class Cells:
    """The cell lines alone (no loci): every descriptor, its hidden truth, and the unseen panel's.

    Rows of `descriptors` are the training, then validation, then test cell lines; `truth` has no
    baselines yet (they are calibrated on loci in `build_world`).
    """

    descriptors: np.ndarray  # (n_cells, D)
    truth: CellTruth
    panel_descriptors: np.ndarray  # (truth_panel, D)
    panel: CellTruth


def draw_cells(config: SynthConfig) -> Cells:
    """The descriptors and hidden per-cell truth exactly as `build_world` draws them, without any locus."""
    hidden = HiddenMap.draw(config.descriptor_dim, _rng(config, STREAM_MAP))
    descriptors = _rng(config, STREAM_CELLS).normal(size=(config.n_cells, config.descriptor_dim))
    panel_descriptors = _rng(config, STREAM_PANEL).normal(size=(config.truth_panel, config.descriptor_dim))
    return Cells(descriptors, CellTruth.from_descriptors(hidden, descriptors, config),
                 panel_descriptors, CellTruth.from_descriptors(hidden, panel_descriptors, config))


def build_world(config: SynthConfig) -> World:
    cells = draw_cells(config)
    descriptors, truth = cells.descriptors, cells.truth

    calibration = _rng(config, STREAM_CALIBRATION)
    energy = Energy.build(config)
    reference = _draw_sequences(config, energy, CALIBRATION_LOCI, calibration)
    energy, reference_energy = energy.calibrated(reference)
    access = _draw_context(config, truth, CALIBRATION_LOCI, calibration)
    train_cells = np.arange(config.cells_train)
    targets = target_rates(truth, train_cells, config)
    truth = replace(truth, baseline=calibrate_baselines(reference_energy, access, truth, config, targets))

    order = _rng(config, STREAM_BLOCKS).permutation(config.locus_blocks)
    test_blocks = np.sort(order[: config.test_blocks])
    val_blocks = np.sort(order[config.test_blocks : config.test_blocks + config.val_blocks])
    train_blocks = np.sort(order[config.test_blocks + config.val_blocks :])
    val_cells = np.arange(config.cells_val) + config.cells_train
    test_cells = np.arange(config.cells_test) + config.cells_train + config.cells_val
    splits = {
        "train": (train_blocks, train_cells),
        "val": (val_blocks, val_cells),
        "test": (test_blocks, test_cells),
    }
    if config.diagnostic_splits:
        splits["test_new_cells"] = (train_blocks, test_cells)
        splits["test_new_loci"] = (test_blocks, train_cells)
    names = (
        [f"train_c{i}" for i in range(config.cells_train)]
        + [f"val_c{i}" for i in range(config.cells_val)]
        + [f"test_c{i}" for i in range(config.cells_test)]
    )
    return World(config, energy, names, descriptors.astype(np.float32), truth, targets, splits,
                 cells.panel_descriptors.astype(np.float32), cells.panel)


@dataclass
class _SplitAccumulator:
    """Per-split columns kept for the reference metrics (13 bytes per example)."""

    y: list[np.ndarray]
    p_true: list[np.ndarray]
    cell: list[np.ndarray]
    energy: list[np.ndarray]
    access: list[np.ndarray]
    shards: ShardSet
    loci: int = 0

    def joined(self, name: str, dtype: str) -> np.ndarray:
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def generate(
    config: SynthConfig,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Generate the benchmark into `out` (atomically). Returns the dataset path."""
    started = time.perf_counter()
    with DatasetWriter(Path(out), overwrite=overwrite) as writer:
        world = build_world(config)
        accumulators = {
            name: _SplitAccumulator([], [], [], [], [], ShardSet(columns={}, rows=[])) for name in world.splits
        }
        loci = ShardSet(rows=[], columns={"seq": [], "block": [], "start": [], "energy": []})
        n_shards = -(-config.n_loci // config.shard_loci)
        for shard in range(n_shards):
            _write_shard(world, writer, shard, loci, accumulators)
            if progress is not None:
                progress(shard + 1, n_shards)
        writer.save("cells.npy", world.descriptors)
        manifest = _manifest(world, loci, accumulators, time.perf_counter() - started)
        return writer.commit(manifest)


def default_cache_dir() -> Path:
    """$ALIGNGUARD_CACHE/data when set, else .alignguard-cache/data under the working directory."""
    root = os.environ.get("ALIGNGUARD_CACHE")
    return Path(root) / "data" if root else DEFAULT_CACHE


def cached_generate(
    config: SynthConfig,
    cache_dir: str | Path | None = None,
    *,
    verify: Verify = "full",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Path of the dataset for `config` under `cache_dir/synth-<hash>`, generated only if absent or broken."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"synth-{config.config_hash()[:16]}"
    if (path / MANIFEST).is_file():
        try:
            if load_manifest(path, verify).config_hash == config.config_hash():
                return path
        except DataError:
            pass  # corrupt or stale cache entry: regenerate it
        return generate(config, path, overwrite=True, progress=progress)
    try:
        return generate(config, path, progress=progress)
    except DataError:
        if not (path / MANIFEST).is_file():  # not a lost race with another process writing the same entry
            raise
        load_manifest(path, verify)
        return path


def _write_shard(world: World, writer: DatasetWriter, shard: int, loci: ShardSet, accumulators) -> None:
    config = world.config
    first = shard * config.shard_loci
    index = np.arange(first, min(first + config.shard_loci, config.n_loci), dtype=np.int64)
    codes = _draw_sequences(config, world.energy, len(index), _rng(config, STREAM_LOCI, shard))
    energy = world.energy(codes)
    access_logit = _draw_context(config, world.truth, len(index), _rng(config, STREAM_CONTEXT, shard))
    p_true = expit(binding_logits(energy, access_logit, world.truth, config)).astype(np.float32)
    y = (_rng(config, STREAM_LABELS, shard).random(p_true.shape) < p_true).astype(np.uint8)
    access = expit(access_logit).astype(np.float32)

    block = world.block_of(index)
    block_start = (np.arange(config.locus_blocks) * config.n_loci + config.locus_blocks - 1) // config.locus_blocks
    start = (index - block_start[block]) * config.window  # windows tiled along each block
    tag = f"{shard:05d}"
    loci.rows.append(len(index))
    for column, values in (("seq", codes), ("block", block), ("start", start), ("energy", energy)):
        loci.columns[column].append(writer.save(f"loci/{column}-{tag}.npy", values))

    for name, (blocks, cells) in world.splits.items():
        chosen = np.flatnonzero(np.isin(block, blocks))
        if len(chosen) == 0:
            continue
        grid = np.ix_(chosen, cells)  # locus-major: a locus's cell lines are adjacent
        columns = {
            "locus": np.repeat(index[chosen], len(cells)),
            "cell": np.tile(cells.astype(np.int32), len(chosen)),
            "y": y[grid].ravel(),
            "access": access[grid].ravel(),
            "p_true": p_true[grid].ravel(),
        }
        accumulator = accumulators[name]
        accumulator.shards.rows.append(len(columns["y"]))
        for column, values in columns.items():
            saved = writer.save(f"splits/{name}/{column}-{tag}.npy", values)
            accumulator.shards.columns.setdefault(column, []).append(saved)
        accumulator.y.append(columns["y"])
        accumulator.p_true.append(columns["p_true"])
        accumulator.cell.append(columns["cell"])
        accumulator.energy.append(np.repeat(energy[chosen], len(cells)))
        accumulator.access.append(columns["access"])
        accumulator.loci += len(chosen)


def _manifest(world: World, loci: ShardSet, accumulators, seconds: float) -> dict:
    config = world.config
    splits = {}
    for name, accumulator in accumulators.items():
        pooled, per_cell = split_metrics(
            accumulator.joined("y", "u1"),
            accumulator.joined("cell", "i4"),
            world.cell_names,
            accumulator.joined("p_true", "f4"),
            accumulator.joined("energy", "f4"),
        )
        splits[name] = {
            "cells": [int(c) for c in world.splits[name][1]],
            "loci": accumulator.loci,
            "examples": accumulator.shards,
            "metrics": pooled,
            "per_cell": per_cell,
        }
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": "synthetic",
        "created_by": f"alignguard {alignguard.__version__} data synth ({seconds:.1f} s)",
        "window": config.window,
        "descriptor_dim": config.descriptor_dim,
        "context_columns": [f"descriptor_{i}" for i in range(config.descriptor_dim)] + ["accessibility"],
        "cell_lines": world.cell_names,
        "cells_file": "cells.npy",
        "blocks": [f"block{b:02d}" for b in range(config.locus_blocks)],
        "loci": loci,
        "splits": splits,
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "truth": _truth(world),
        "context_stats": _context_stats(world, accumulators["train"]),
    }


def _truth(world: World) -> dict:
    """The hidden parameters, for comparing what a model learns (e.g. T(c)) with the truth."""
    config, truth = world.config, world.truth
    split_of = {int(c): name for name in ("train", "val", "test") for c in world.splits[name][1]}
    motif, cofactor = world.energy.motif, world.energy.cofactor
    return {
        "mechanism": config.mechanism,
        "formula": "p = sigmoid((M*(c) U*(x) + B*(c,a)) / T*(c,a)), B* = beta0(c) + k_B logit(a)"
        if config.mechanism == "multiplicative"
        else "p = sigmoid((U*(x) - R*(c,a)) / T0), R* = -(beta0(c) + k_B logit(a)), T0 = 1",
        "motif": {"id": motif.matrix_id, "name": motif.name, "source": motif.source},
        "cofactor": None if cofactor is None else {"id": cofactor.matrix_id, "name": cofactor.name},
        "energy_scale": world.energy.scale,
        "cells": {
            name: {
                "split": split_of[i],
                "M": float(truth.m[i]),
                "beta0": float(truth.baseline[i]),
                "T_at_half_access": float(np.exp(truth.log_t_cell[i])),
                "access_shift": float(truth.access_shift[i]),
                "target_rate": float(world.targets[i]),
            }
            for i, name in enumerate(world.cell_names)
        },
        # Unseen cell lines beyond the test split, drawn like every descriptor (d ~ N(0, I)), for
        # truth recovery across many cell lines (M is one number per cell line: a correlation over
        # the 3 test cell lines turns on one pair's order).
        "panel": {
            "descriptors": [[float(v) for v in row] for row in world.panel_descriptors],
            "M": [float(v) for v in world.panel.m],
            "T_at_half_access": [float(v) for v in np.exp(world.panel.log_t_cell)],
        },
    }


def _context_stats(world: World, train: _SplitAccumulator) -> dict[str, list[float]]:
    """Mean and s.d. of each context column over training examples (a trainer may standardise c)."""
    cells = train.joined("cell", "i4")
    access = train.joined("access", "f4").astype(np.float64)
    weights = np.bincount(cells, minlength=len(world.descriptors)).astype(np.float64)
    weights /= weights.sum()
    mean = weights @ world.descriptors
    std = np.sqrt(weights @ (world.descriptors - mean) ** 2)
    return {
        "mean": [float(v) for v in mean] + [float(access.mean())],
        "std": [float(v) for v in std] + [float(access.std())],
    }
