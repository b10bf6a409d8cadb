"""Configuration of the built-in benchmark (`SynthConfig`) and of the real-data import (`RealDataConfig`).

Every field has a documented default; `docs/data.md` explains what each does to the ground truth.
A synthetic dataset is a pure function of its `SynthConfig`, so `config_hash` keys the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from alignguard.strict import StrictModel

# Bump when the generator's output for a given config changes, so stale caches are not reused.
GENERATOR_VERSION = 1


class SynthConfig(StrictModel):
    """The planted-ground-truth benchmark. Defaults: ~52k (locus, cell) examples in a few seconds."""

    model_config = ConfigDict(frozen=True)

    seed: int = Field(0, ge=0, description="Everything is a deterministic function of the seed.")
    n_loci: int = Field(8000, ge=20, description="Distinct DNA windows (loci).")
    window: int = Field(200, ge=24, le=100_000, description="Window length L in bp.")
    descriptor_dim: int = Field(8, ge=1, le=1024, description="D, the cell descriptor dimension.")
    cells_train: int = Field(8, ge=2, description="Training cell lines (>= 2 so pairs exist).")
    cells_val: int = Field(3, ge=1, description="Validation cell lines (unseen descriptors).")
    cells_test: int = Field(3, ge=1, description="Held-out test cell lines (unseen descriptors).")
    locus_blocks: int = Field(20, ge=3, description="Chromosome-like blocks of consecutive loci.")
    val_blocks: int = Field(3, ge=1, description="Blocks whose loci form the validation split.")
    test_blocks: int = Field(3, ge=1, description="Blocks whose loci form the test split.")
    positive_rate: float = Field(
        0.125, ge=0.002, le=0.9, description="Mean positive rate of the training cell lines (seed: 0.125; "
        "genome-like: 0.01)."
    )
    mechanism: Literal["multiplicative", "additive"] = Field(
        "multiplicative",
        description="multiplicative: sigmoid((M*U + B)/T) (the CMDN design); "
        "additive: sigmoid((U - R)/T0) with one shared T0 (the legacy model's assumption).",
    )
    background: Literal["iid", "markov"] = Field("iid", description="Background sequence model.")
    gc: float = Field(0.41, ge=0.05, le=0.95, description="GC content of the background (human ~0.41).")
    cpg_depletion: float = Field(
        0.25, gt=0.0, le=1.0, description="markov only: P(G after C) is scaled by this (human CpG o/e ~0.25)."
    )
    motif: str = Field("MA0139.1", description="JASPAR matrix id of the bound TF (CTCF by default).")
    cofactor: str | None = Field(None, description="Optional JASPAR id of a co-factor motif.")
    cofactor_weight: float = Field(0.5, ge=0.0, description="Weight of the co-factor score in U*.")
    plant_rate: float = Field(0.5, ge=0.0, le=1.0, description="Probability a locus gets a motif instance.")
    cofactor_plant_rate: float = Field(0.3, ge=0.0, le=1.0, description="Same, for the co-factor.")
    cell_effect: float = Field(
        1.0, ge=0.0, description="Strength of descriptor effects on M*, T*, accessibility and per-cell rates."
    )
    access_effect: float = Field(1.0, ge=0.0, description="Strength of accessibility effects on B*, T*.")
    truth_panel: int = Field(
        256, ge=0, le=100_000,
        description="Extra unseen cell lines recorded with their hidden M*, T* only (descriptors, no examples), "
        "so truth recovery can correlate a model's M with M* over many new cell lines, not only the few "
        "test cell lines.",
    )
    diagnostic_splits: bool = Field(
        False,
        description="Also write test_new_cells (training loci x test cells) and test_new_loci "
        "(test loci x training cells), to tell the two kinds of generalisation apart.",
    )
    shard_loci: int = Field(65_536, ge=16, description="Loci per shard; bounds peak memory.")

    @model_validator(mode="after")
    def _blocks_fit(self) -> SynthConfig:
        if self.val_blocks + self.test_blocks >= self.locus_blocks:
            raise ValueError("val_blocks + test_blocks must leave at least one training block")
        if self.locus_blocks > self.n_loci:
            raise ValueError("locus_blocks must not exceed n_loci")
        return self

    @property
    def n_cells(self) -> int:
        return self.cells_train + self.cells_val + self.cells_test

    def config_hash(self) -> str:
        """Stable hash of everything that determines the generated data."""
        payload = json.dumps(
            {"generator_version": GENERATOR_VERSION, **self.model_dump(mode="json")}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()


class RealDataConfig(StrictModel):
    """ENCODE-DREAM-style inputs converted to the on-disk dataset format."""

    model_config = ConfigDict(frozen=True)

    genome: Path = Field(description="Genome FASTA (read with pyfaidx; a .fai index is built if missing).")
    labels: Path = Field(description="TSV: chrom start end <cell1> <cell2> ... with B/U/A per cell.")
    accessibility: dict[str, Path] = Field(
        description="Per cell line: bedGraph or TSV (chrom start end value), or bigWig (needs pyBigWig)."
    )
    descriptors: Path = Field(description="TSV: cell <feature1> ... <featureD>, one row per cell line.")
    window: int = Field(200, ge=1, le=1_000_000, description="Window L centred on each label bin.")
    val_chroms: list[str] = Field(default_factory=list, description="Chromosomes held out for validation.")
    test_chroms: list[str] = Field(default_factory=list, description="Chromosomes held out for test.")
    val_cells: list[str] = Field(
        default_factory=list, description="Validation cell lines (empty: validate on the training cells)."
    )
    test_cells: list[str] = Field(
        default_factory=list, description="Held-out test cell lines (empty: test on the training cells)."
    )
    access_transform: Literal["log1p", "none"] = Field(
        "log1p", description="Applied to the mean signal over each label bin."
    )
    shard_rows: int = Field(200_000, ge=1, description="Label rows per shard; bounds peak memory.")

    @model_validator(mode="after")
    def _disjoint(self) -> RealDataConfig:
        if set(self.val_chroms) & set(self.test_chroms):
            raise ValueError("val_chroms and test_chroms overlap")
        if set(self.val_cells) & set(self.test_cells):
            raise ValueError("val_cells and test_cells overlap")
        return self
