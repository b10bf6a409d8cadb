"""Shared fixtures: a small synthetic dataset (generated once per session) and tiny real-data files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from alignguard.data.config import RealDataConfig, SynthConfig

SMALL = dict(
    n_loci=900, locus_blocks=6, val_blocks=1, test_blocks=1, cells_train=3, cells_val=2, cells_test=2, seed=3
)


@pytest.fixture(scope="session")
def small_settings() -> dict:
    """SynthConfig fields of a world small enough for unit tests (900 loci, 7 cell lines)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def small_config() -> SynthConfig:
    return SynthConfig(**SMALL)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, small_config) -> Path:
    from alignguard.data.synth import generate

    return generate(small_config, tmp_path_factory.mktemp("synth") / "small")


@dataclass
class RealFiles:
    root: Path
    genome: Path
    labels: Path
    descriptors: Path
    access: dict[str, Path]
    sequences: dict[str, str]

    def config(self, **changes) -> RealDataConfig:
        settings = dict(
            genome=self.genome, labels=self.labels, descriptors=self.descriptors, accessibility=self.access,
            window=100, val_chroms=["chr2"], test_chroms=["chr3"], test_cells=["GM12878"],
        )  # fmt: skip
        settings.update(changes)
        return RealDataConfig(**settings)


CELLS = ["K562", "HepG2", "GM12878"]
CHROMS = {"chr1": 1200, "chr2": 600, "chr3": 600}


def write_fasta(path: Path, sequences: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as handle:
        for name, sequence in sequences.items():
            handle.write(f">{name}\n")
            handle.write("\n".join(sequence[i : i + width] for i in range(0, len(sequence), width)) + "\n")


@pytest.fixture
def real_files(tmp_path) -> RealFiles:
    """Tiny FASTA, labels (200-bp bins, 100-bp step), per-cell bedGraphs and a descriptor table."""
    rng = np.random.default_rng(0)
    sequences = {chrom: "".join(rng.choice(list("ACGT"), size)) for chrom, size in CHROMS.items()}
    genome = tmp_path / "genome.fa"
    write_fasta(genome, sequences)
    labels = tmp_path / "labels.tsv"
    with open(labels, "w") as handle:
        handle.write("chrom\tstart\tend\t" + "\t".join(CELLS) + "\n")
        for chrom, size in CHROMS.items():
            for start in range(0, size - 200 + 1, 100):
                values = rng.choice(list("UUUUBA"), len(CELLS))
                handle.write(f"{chrom}\t{start}\t{start + 200}\t" + "\t".join(values) + "\n")
    access = {}
    for cell in CELLS:
        access[cell] = tmp_path / f"{cell}.bedGraph"
        with open(access[cell], "w") as handle:
            handle.write("track type=bedGraph\n")
            for chrom, size in CHROMS.items():
                for start in range(0, size, 50):
                    handle.write(f"{chrom}\t{start}\t{start + 50}\t{rng.exponential():.4f}\n")
    descriptors = tmp_path / "cells.tsv"
    with open(descriptors, "w") as handle:
        handle.write("cell\tctcf_expr\th3k27ac\n")
        for cell in CELLS:
            handle.write(f"{cell}\t{rng.normal():.4f}\t{rng.normal():.4f}\n")
    return RealFiles(tmp_path, genome, labels, descriptors, access, sequences)
