"""Real (ENCODE-DREAM-style) data: conversion, windows, accessibility, splits and every bad-input error."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from alignguard.data.dataset import open_dataset
from alignguard.data.encoding import decode
from alignguard.data.real import SignalTrack, convert_real
from alignguard.errors import DataError, ExitCode


def _label_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = [line.split() for line in path.read_text().splitlines()]
    return lines[0][3:], lines[1:]


def _bedgraph_mean(path: Path, chrom: str, start: int, end: int) -> float:
    total = 0.0
    for line in path.read_text().splitlines()[1:]:
        c, s, e, v = line.split()
        overlap = min(end, int(e)) - max(start, int(s))
        if c == chrom and overlap > 0:
            total += overlap * float(v)
    return total / (end - start)


def _only(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}")))


def test_conversion_matches_the_inputs(real_files):
    out = convert_real(real_files.config(), real_files.root / "out")
    data = open_dataset(out)
    assert data.kind == "real" and data.window == 100 and data.descriptor_dim == 2
    assert data.split_names == ["train", "val", "test"]
    assert data.cell_lines("train") == ["K562", "HepG2"] == data.cell_lines("val")
    assert data.cell_lines("test") == ["GM12878"]

    cells, rows = _label_rows(real_files.labels)
    expected = {"train": 0, "val": 0, "test": 0}
    for row in rows:
        split = {"chr1": "train", "chr2": "val", "chr3": "test"}[row[0]]
        wanted = ["GM12878"] if split == "test" else ["K562", "HepG2"]
        expected[split] += sum(row[3 + cells.index(c)] != "A" for c in wanted)
    assert {name: len(data.split(name)) for name in expected} == expected

    starts = np.concatenate([np.load(out / f) for f in data.manifest.loci.columns["start"]])
    blocks = np.concatenate([np.load(out / f) for f in data.manifest.loci.columns["block"]])
    descriptors = {line.split()[0]: [float(v) for v in line.split()[1:]]
                   for line in real_files.descriptors.read_text().splitlines()[1:]}  # fmt: skip
    for split in data.split_names:
        dataset = data.split(split)
        batch = dataset.batch(np.arange(len(dataset)))
        assert "p_true" not in batch
        for i in range(0, len(dataset), 7):
            locus, cell = int(batch["locus"][i]), data.cell_lines()[int(batch["cell"][i])]
            chrom = data.manifest.blocks[blocks[locus]]
            start = int(starts[locus])
            bin_start = start + 50 - 100  # window of 100 centred on a 200-bp bin
            row = next(r for r in rows if r[0] == chrom and int(r[1]) == bin_start)
            assert batch["y"][i].item() == (1.0 if row[3 + cells.index(cell)] == "B" else 0.0)
            window = batch["x"][i].numpy()
            assert decode(window.argmax(axis=0)) == real_files.sequences[chrom][start : start + 100]
            mean = _bedgraph_mean(real_files.access[cell], chrom, bin_start, bin_start + 200)
            assert batch["c"][i, -1].item() == pytest.approx(np.log1p(mean), rel=1e-5)
            assert batch["c"][i, :2].tolist() == pytest.approx(descriptors[cell], rel=1e-5)
    assert data.bayes("train").bayes_aupr is None and data.bayes("train").positive_rate is not None
    first, second = data.pairs("train", 10, 0)
    assert (first["locus"] == second["locus"]).all() and (first["cell"] != second["cell"]).all()


def test_windows_past_the_chromosome_end_are_n_padded(real_files):
    data = open_dataset(convert_real(real_files.config(window=500), real_files.root / "wide"))
    val = data.split("val")  # chr2: the first bin [0, 200) has centre 100, so the window starts at -150
    batch = val.batch(np.arange(len(val)))
    first = int(np.argmin(batch["locus"].numpy()))
    x = batch["x"][first].numpy()
    assert x[:, :150].sum() == 0 and (x[:, 150:].sum(axis=0) == 1).all()


def test_gzipped_labels_and_header_only_tsv_accessibility(real_files):
    gz = real_files.root / "labels.tsv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(real_files.labels.read_text())
    tsv = real_files.root / "K562.tsv"
    intervals = real_files.access["K562"].read_text().splitlines()[1:]  # drop the track line
    tsv.write_text("chrom\tstart\tend\tvalue\n" + "\n".join(intervals))
    access = {**real_files.access, "K562": tsv}
    plain = open_dataset(convert_real(real_files.config(), real_files.root / "plain"))
    zipped = open_dataset(convert_real(real_files.config(labels=gz, accessibility=access), real_files.root / "gz"))
    for split in plain.split_names:
        a, b = plain.split(split), zipped.split(split)
        assert len(a) == len(b)
        assert (a.batch(np.arange(len(a)))["c"] == b.batch(np.arange(len(b)))["c"]).all()


def test_signal_mean_handles_gaps_and_partial_overlap(tmp_path):
    track = SignalTrack.from_intervals(tmp_path / "x", {"chr1": [(20, 30, 3.0, 2), (0, 10, 1.0, 1)]})
    starts, ends = np.array([5, 25, 0, 40]), np.array([25, 40, 10, 50])
    np.testing.assert_allclose(track.mean("chr1", starts, ends), [20 / 20, 15 / 15, 1.0, 0.0])
    np.testing.assert_allclose(track.mean("chrUn", starts, ends), 0.0)


# ----- bad input: each a DataError (exit 2) naming the file and record, nothing written -----


def _expect_error(config, out: Path, *fragments: str) -> DataError:
    with pytest.raises(DataError) as caught:
        convert_real(config, out)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert caught.value.exit_code == ExitCode.USAGE
    assert _only(out) == []  # nothing half-written
    return caught.value


def test_fasta_missing_a_chromosome(real_files):
    _write_genome(real_files.genome, {k: v for k, v in real_files.sequences.items() if k != "chr3"})
    lines = real_files.labels.read_text().splitlines()
    first_chr3 = 1 + next(i for i, line in enumerate(lines) if line.startswith("chr3"))
    _expect_error(real_files.config(), real_files.root / "out", "'chr3'", "not in the genome FASTA",
                  f"labels.tsv:{first_chr3}", "genome.fa")  # fmt: skip


def test_label_interval_outside_the_chromosome(real_files):
    with open(real_files.labels, "a") as handle:
        handle.write("chr2\t500\t700\tU\tB\tU\n")
    line = len(real_files.labels.read_text().splitlines())
    _expect_error(real_files.config(), real_files.root / "out", "outside the chromosome", f"labels.tsv:{line}",
                  "600 bp")  # fmt: skip


def test_cell_without_accessibility_or_descriptor(real_files):
    access = {k: v for k, v in real_files.access.items() if k != "HepG2"}
    _expect_error(real_files.config(accessibility=access), real_files.root / "out", "'HepG2'", "no accessibility",
                  "labels.tsv:1")  # fmt: skip
    lines = real_files.descriptors.read_text().splitlines()
    real_files.descriptors.write_text("\n".join(line for line in lines if not line.startswith("GM12878")) + "\n")
    _expect_error(real_files.config(), real_files.root / "out", "'GM12878'", "descriptor table", "cells.tsv")


def test_non_acgtn_character_in_the_genome(real_files):
    sequences = dict(real_files.sequences)
    chr1 = sequences["chr1"]
    sequences["chr1"] = chr1[:333] + "R" + chr1[334:]
    _write_genome(real_files.genome, sequences)
    _expect_error(real_files.config(), real_files.root / "out", "'R'", "chr1:333", "genome.fa", "labels.tsv:")


def test_bad_label_value_and_bad_rows(real_files):
    text = real_files.labels.read_text().splitlines()
    text[4] = text[4].rsplit("\t", 1)[0] + "\tX"
    real_files.labels.write_text("\n".join(text) + "\n")
    _expect_error(real_files.config(), real_files.root / "out", "labels.tsv:5", "B (bound)")
    real_files.labels.write_text("chrom\tstart\tend\n")
    _expect_error(real_files.config(), real_files.root / "out", "labels.tsv:1", "header")


def test_overlapping_accessibility_intervals(real_files):
    with open(real_files.access["K562"], "a") as handle:
        handle.write("chr1\t25\t75\t1.0\n")
    _expect_error(real_files.config(), real_files.root / "out", "overlap", "K562.bedGraph:")


def test_accessibility_with_other_chromosome_names(real_files):
    path = real_files.access["HepG2"]
    path.write_text(path.read_text().replace("chr", ""))  # Ensembl-style names: 1, 2, 3
    _expect_error(real_files.config(), real_files.root / "out", "HepG2", "none of the labelled chromosomes",
                  "HepG2.bedGraph")  # fmt: skip


def test_split_settings_must_name_existing_chromosomes_and_cells(real_files):
    _expect_error(real_files.config(test_chroms=["chr8"]), real_files.root / "out", "chr8", "never appear")
    _expect_error(real_files.config(test_cells=["HeLa"]), real_files.root / "out", "HeLa", "not label columns")


@pytest.mark.skipif(importlib.util.find_spec("pyBigWig") is not None, reason="pyBigWig is installed")
def test_bigwig_without_pybigwig_is_a_clear_error(real_files):
    bigwig = real_files.root / "K562.bw"
    bigwig.write_bytes(b"\x00" * 64)
    access = {**real_files.access, "K562": bigwig}
    _expect_error(real_files.config(accessibility=access), real_files.root / "out", "pyBigWig", "K562.bw")


def _write_genome(path: Path, sequences: dict[str, str]) -> None:
    with open(path, "w") as handle:
        for name, sequence in sequences.items():
            lines = (sequence[i : i + 60] for i in range(0, len(sequence), 60))
            handle.write(f">{name}\n" + "\n".join(lines) + "\n")
    index = path.with_suffix(path.suffix + ".fai")
    if index.exists():
        index.unlink()
