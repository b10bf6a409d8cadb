"""Import ENCODE-DREAM-style data into the dataset format: `convert_real(RealDataConfig, out)`.

Inputs: a genome FASTA (pyfaidx), a labels TSV `chrom start end <cell>...` holding B (bound),
U (unbound) or A (ambiguous, excluded) per cell line, per-cell accessibility (bedGraph/TSV of
`chrom start end value`, or bigWig through the optional pyBigWig), and a cell-descriptor TSV.
Each label row is one locus: a window of `window` bp centred on the bin (N-padded past the
chromosome ends). Labels are streamed in chunks of `shard_rows`, one shard per chunk.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import alignguard
from alignguard.errors import DataError

from .config import RealDataConfig
from .encoding import INVALID_CODE, N_CODE, encode_bytes
from .metrics import split_metrics
from .store import FORMAT_NAME, FORMAT_VERSION, DatasetWriter, ShardSet

LABEL_CODES = {"U": 0, "B": 1, "A": 2}
BIGWIG_SUFFIXES = (".bw", ".bigwig")


@contextmanager
def _open_text(path: Path):
    """A text file (gzip by its .gz suffix); bad encodings and damaged archives as DataErrors naming it."""
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) \
                as handle:
            yield handle
    except UnicodeDecodeError as error:
        raise DataError(f"'{path.name}' is not UTF-8 text (byte 0x{error.object[error.start]:02x}: {error.reason})",
                        where=str(path), fix="save it as UTF-8 (or plain ASCII) text") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"'{path.name}' ends in .gz but is not a complete gzip file ({error})", where=str(path),
                        fix="compress it again with gzip, or drop the .gz suffix if it is plain text") from None
    except IsADirectoryError:
        raise DataError(f"'{path}' is a directory, not a file", where=str(path), fix="pass the file itself") from None
    except OSError as error:
        raise DataError(f"cannot read '{path.name}': {error.strerror or error}", where=str(path),
                        fix="check the path and its permissions") from None


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist", where=str(path), fix=f"pass the path of the {what}")


def read_descriptors(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """TSV with a header `cell f1 ... fD` and one row of floats per cell line."""
    _require_file(path, "descriptor table")
    with _open_text(path) as handle:
        lines = [(number, line.split()) for number, line in enumerate(handle, 1) if line.strip()]
    if not lines:
        raise DataError("descriptor table is empty", where=str(path), fix="add a header `cell f1 ... fD` and rows")
    _, header = lines[0]
    features = header[1:]
    if not features:
        raise DataError(
            "descriptor table header names no feature columns",
            where=f"{path}:1",
            fix="write a header `cell f1 ... fD` (tab-separated) and D numbers per row",
        )
    table: dict[str, np.ndarray] = {}
    for number, fields in lines[1:]:
        if len(fields) != len(header):
            raise DataError(
                f"descriptor row has {len(fields)} fields, the header has {len(header)}",
                where=f"{path}:{number} (cell {fields[0]!r})",
                fix="give every cell line one value per header column",
            )
        try:
            values = np.array([float(v) for v in fields[1:]], dtype=np.float32)
        except ValueError as error:
            raise DataError(
                f"descriptor row holds a value that is not a number ({error})",
                where=f"{path}:{number} (cell {fields[0]!r})",
                fix="use plain decimal numbers",
            ) from error
        if not np.isfinite(values).all():
            raise DataError(
                "descriptor row holds NaN or infinity",
                where=f"{path}:{number} (cell {fields[0]!r})",
                fix="impute or drop the missing features",
            )
        if fields[0] in table:
            raise DataError(f"cell line {fields[0]!r} appears twice", where=f"{path}:{number}", fix="keep one row")
        table[fields[0]] = values
    return features, table


@dataclass
class SignalTrack:
    """A piecewise-constant signal per chromosome (bedGraph semantics: uncovered bases are 0)."""

    path: Path
    starts: dict[str, np.ndarray]
    ends: dict[str, np.ndarray]
    cumulative: dict[str, np.ndarray]  # integral of the signal up to the end of each interval
    values: dict[str, np.ndarray]

    @classmethod
    def from_intervals(cls, path: Path, intervals: dict[str, list[tuple[int, int, float, int]]]) -> SignalTrack:
        starts, ends, cumulative, values = {}, {}, {}, {}
        for chrom, rows in intervals.items():
            rows.sort()
            s = np.array([r[0] for r in rows], dtype=np.int64)
            e = np.array([r[1] for r in rows], dtype=np.int64)
            v = np.array([r[2] for r in rows], dtype=np.float64)
            overlap = np.flatnonzero(s[1:] < e[:-1])
            if len(overlap):
                row = rows[overlap[0] + 1]
                raise DataError(
                    f"accessibility intervals overlap on {chrom} at {row[0]}",
                    where=f"{path}:{row[3]}",
                    fix="bedGraph intervals must not overlap; merge them (e.g. bedtools merge)",
                )
            starts[chrom], ends[chrom], values[chrom] = s, e, v
            cumulative[chrom] = np.concatenate([[0.0], np.cumsum(v * (e - s))])
        return cls(path, starts, ends, cumulative, values)

    def _integral(self, chrom: str, position: np.ndarray) -> np.ndarray:
        s, e, v, c = self.starts[chrom], self.ends[chrom], self.values[chrom], self.cumulative[chrom]
        k = np.searchsorted(s, position, side="left")  # intervals starting before `position`
        total = c[k]
        straddles = (k > 0) & (e[np.maximum(k - 1, 0)] > position)
        last = np.maximum(k - 1, 0)
        return total - np.where(straddles, v[last] * (e[last] - position), 0.0)

    def mean(self, chrom: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Mean signal over each [start, end) (0 where the track has nothing)."""
        if chrom not in self.starts:
            return np.zeros(len(starts))
        return (self._integral(chrom, ends) - self._integral(chrom, starts)) / (ends - starts)


def read_signal(path: Path) -> SignalTrack:
    """bedGraph / TSV (`chrom start end value`, optional header) or bigWig by suffix."""
    _require_file(path, "accessibility file")
    if path.suffix.lower() in BIGWIG_SUFFIXES:
        return _read_bigwig(path)
    intervals: dict[str, list] = {}
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields or fields[0] in ("track", "browser") or fields[0].startswith("#"):
                continue
            if len(fields) < 4:
                raise DataError(
                    f"accessibility line has {len(fields)} fields, expected chrom start end value",
                    where=f"{path}:{number}",
                    fix="use bedGraph: chrom<TAB>start<TAB>end<TAB>value",
                )
            try:
                start, end, value = int(fields[1]), int(fields[2]), float(fields[3])
            except ValueError as error:
                if number == 1:  # a TSV header such as `chrom start end value`
                    continue
                raise DataError(
                    f"accessibility line is not `chrom start end value` ({error})",
                    where=f"{path}:{number}",
                    fix="start and end must be integers and value a number",
                ) from error
            if start < 0 or end <= start or not np.isfinite(value):
                raise DataError(
                    f"accessibility interval {fields[0]}:{start}-{end} = {value} is invalid",
                    where=f"{path}:{number}",
                    fix="intervals need 0 <= start < end and a finite value",
                )
            intervals.setdefault(fields[0], []).append((start, end, value, number))
    return SignalTrack.from_intervals(path, intervals)


def _read_bigwig(path: Path) -> SignalTrack:
    try:
        import pyBigWig  # optional extra: pip install 'alignguard[bigwig]'
    except ImportError as error:
        raise DataError(
            "reading bigWig needs the optional package pyBigWig, which is not installed",
            where=str(path),
            fix="pip install pyBigWig, or convert the file to bedGraph (bigWigToBedGraph)",
        ) from error
    handle = pyBigWig.open(str(path))
    if handle is None or not handle.isBigWig():
        raise DataError("file is not a readable bigWig", where=str(path), fix="check the file or use bedGraph")
    try:
        intervals = {
            chrom: [(s, e, v, 0) for s, e, v in (handle.intervals(chrom) or ()) if np.isfinite(v)]
            for chrom in handle.chroms()
        }
    finally:
        handle.close()
    return SignalTrack.from_intervals(path, intervals)


class Genome:
    """pyfaidx-backed genome giving N-padded windows as codes; keeps the last few chromosomes in memory."""

    CACHED_CHROMOSOMES = 2

    def __init__(self, path: Path):
        _require_file(path, "genome FASTA")
        import pyfaidx

        self.path = path
        try:
            self.fasta = pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=False)
        except (pyfaidx.FastaIndexingError, OSError, ValueError) as error:
            raise DataError(
                f"genome FASTA cannot be indexed: {error}",
                where=str(path),
                fix="check the FASTA (consistent line lengths, '>' headers) and that its folder is writable "
                "for the .fai index",
            ) from error
        self.lengths = {name: len(record) for name, record in self.fasta.records.items()}
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def codes(self, chrom: str) -> np.ndarray:
        if chrom not in self._cache:
            self._cache[chrom] = encode_bytes(self.fasta[chrom][:])
            while len(self._cache) > self.CACHED_CHROMOSOMES:
                self._cache.popitem(last=False)
        return self._cache[chrom]

    def windows(self, chrom: str, starts: np.ndarray, length: int) -> np.ndarray:
        sequence = self.codes(chrom)
        position = starts[:, None] + np.arange(length)
        inside = (position >= 0) & (position < len(sequence))
        windows = np.full(position.shape, N_CODE, dtype=np.uint8)
        windows[inside] = sequence[position[inside]]
        return windows


@dataclass
class _Chunk:
    lines: np.ndarray  # line numbers in the labels file
    chroms: list[str]
    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray  # (n, n_cells) codes U=0, B=1, A=2


def read_label_header(path: Path) -> list[str]:
    _require_file(path, "labels TSV")
    with _open_text(path) as handle:
        header = handle.readline().split()
    if len(header) < 4 or [h.lower() for h in header[:3]] != ["chrom", "start", "end"]:
        raise DataError(
            "labels header must be `chrom start end <cell1> <cell2> ...`",
            where=f"{path}:1",
            fix="add the header line with one column name per cell line",
        )
    if len(set(header[3:])) != len(header) - 3:
        raise DataError("labels header names a cell line twice", where=f"{path}:1", fix="rename the duplicate")
    return header[3:]


def _label_chunks(path: Path, n_cells: int, size: int) -> Iterator[_Chunk]:
    lines, chroms, starts, ends, labels = [], [], [], [], []
    with _open_text(path) as handle:
        handle.readline()
        for number, line in enumerate(handle, 2):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_cells + 3:
                raise DataError(
                    f"label row has {len(fields)} fields, the header has {n_cells + 3}",
                    where=f"{path}:{number}",
                    fix="give chrom, start, end and one B/U/A per cell line",
                )
            try:
                start, end = int(fields[1]), int(fields[2])
                row = [LABEL_CODES[value.upper()] for value in fields[3:]]
            except (ValueError, KeyError) as error:
                raise DataError(
                    f"label row is not `chrom start end B|U|A...` (bad value {error})",
                    where=f"{path}:{number}",
                    fix="start/end are integers; labels are B (bound), U (unbound) or A (ambiguous)",
                ) from error
            if end <= start:
                raise DataError(
                    f"label interval {fields[0]}:{start}-{end} is empty or reversed",
                    where=f"{path}:{number}",
                    fix="use 0-based half-open intervals with start < end",
                )
            lines.append(number)
            chroms.append(fields[0])
            starts.append(start)
            ends.append(end)
            labels.append(row)
            if len(lines) == size:
                yield _Chunk(np.array(lines), chroms, np.array(starts), np.array(ends), np.array(labels, np.uint8))
                lines, chroms, starts, ends, labels = [], [], [], [], []
    if lines:
        yield _Chunk(np.array(lines), chroms, np.array(starts), np.array(ends), np.array(labels, np.uint8))


@dataclass(frozen=True)
class _Plan:
    cells: list[str]
    splits: dict[str, tuple[set[str] | None, np.ndarray]]  # name -> (chroms or None = training chroms, cells)
    held_out: set[str]

    def split_of(self, chrom: str) -> list[str]:
        names = []
        for name, (chroms, _) in self.splits.items():
            if (chroms is None and chrom not in self.held_out) or (chroms is not None and chrom in chroms):
                names.append(name)
        return names


def _plan(config: RealDataConfig, cells: list[str]) -> _Plan:
    for role, names in (("val_cells", config.val_cells), ("test_cells", config.test_cells)):
        unknown = sorted(set(names) - set(cells))
        if unknown:
            raise DataError(
                f"{role} names cell lines that are not label columns: {', '.join(unknown)}",
                where=f"{config.labels}:1",
                fix=f"choose among: {', '.join(cells)}",
            )
    index = {name: i for i, name in enumerate(cells)}
    held_cells = set(config.val_cells) | set(config.test_cells)
    train_cells = np.array([index[c] for c in cells if c not in held_cells], dtype=np.int32)
    if len(train_cells) == 0:
        raise DataError(
            "every cell line is held out; none is left for training",
            where=f"{config.labels}:1",
            fix="leave at least one label column out of val_cells/test_cells",
        )
    splits: dict[str, tuple[set[str] | None, np.ndarray]] = {"train": (None, train_cells)}
    for name, chroms, chosen in (
        ("val", config.val_chroms, config.val_cells),
        ("test", config.test_chroms, config.test_cells),
    ):
        if chroms or chosen:
            cell_ids = np.array([index[c] for c in chosen], dtype=np.int32) if chosen else train_cells
            splits[name] = (set(chroms) if chroms else None, cell_ids)
    return _Plan(cells, splits, set(config.val_chroms) | set(config.test_chroms))


def convert_real(
    config: RealDataConfig, out: Path, *, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> Path:
    """Convert real data to the dataset format (atomically). Returns the dataset path."""
    started = time.perf_counter()
    cells = read_label_header(config.labels)
    features, descriptor_table = read_descriptors(config.descriptors)
    for cell in cells:
        if cell not in descriptor_table:
            raise DataError(
                f"cell line {cell!r} has labels but no row in the descriptor table",
                where=f"{config.labels}:1 (column {cell}); {config.descriptors}",
                fix=f"add a row for {cell} to {config.descriptors.name}",
            )
        if cell not in config.accessibility:
            raise DataError(
                f"cell line {cell!r} has labels but no accessibility file",
                where=f"{config.labels}:1 (column {cell})",
                fix=f"pass --access {cell}=PATH (bedGraph/TSV or bigWig)",
            )
    plan = _plan(config, cells)
    genome = Genome(config.genome)
    tracks = [read_signal(Path(config.accessibility[cell])) for cell in cells]
    descriptors = np.stack([descriptor_table[cell] for cell in cells])

    with DatasetWriter(Path(out), overwrite=overwrite) as writer:
        state = _ConvertState(plan, writer)
        for shard, chunk in enumerate(_label_chunks(config.labels, len(cells), config.shard_rows)):
            state.add(shard, chunk, genome, tracks, config)
            if progress is not None:
                progress(shard + 1)
        seen = state.chroms_seen
        missing = sorted((set(config.val_chroms) | set(config.test_chroms)) - seen)
        if missing:
            raise DataError(
                f"held-out chromosomes never appear in the labels: {', '.join(missing)}",
                where=str(config.labels),
                fix="check the chromosome names (e.g. 'chr8' vs '8') in --val-chroms/--test-chroms",
            )
        for cell, track in zip(cells, tracks):
            if seen and not seen & set(track.starts):
                named = sorted(track.starts)[0] if track.starts else "none"
                raise DataError(
                    f"the accessibility file of {cell} covers none of the labelled chromosomes "
                    f"(labels use e.g. {sorted(seen)[0]}, the file names e.g. {named})",
                    where=str(track.path),
                    fix="use the same chromosome names in both files (e.g. 'chr1', not '1')",
                )
        writer.save("cells.npy", descriptors)
        return writer.commit(state.manifest(config, features, descriptors, time.perf_counter() - started))


class _ConvertState:
    """Shards written so far and the columns kept for the summary metrics."""

    def __init__(self, plan: _Plan, writer: DatasetWriter):
        self.plan, self.writer = plan, writer
        self.blocks: dict[str, int] = {}
        self.chroms_seen: set[str] = set()
        self.loci = ShardSet(rows=[], columns={"seq": [], "block": [], "start": []})
        self.examples = {name: ShardSet(rows=[], columns={}) for name in plan.splits}
        self.kept = {name: {"y": [], "cell": [], "access": [], "loci": 0} for name in plan.splits}
        self.n_loci = 0

    def add(self, shard: int, chunk: _Chunk, genome: Genome, tracks: list[SignalTrack], config) -> None:
        chroms = np.array(chunk.chroms)
        window_starts = (chunk.starts + chunk.ends) // 2 - config.window // 2
        codes = np.empty((len(chroms), config.window), dtype=np.uint8)
        for chrom in dict.fromkeys(chunk.chroms):  # first-appearance order
            rows = np.flatnonzero(chroms == chrom)
            self._check_interval(chrom, rows, chunk, genome, config)
            codes[rows] = genome.windows(chrom, window_starts[rows], config.window)
            self._check_bases(chrom, rows, codes, window_starts, chunk, genome, config)
            self.blocks.setdefault(chrom, len(self.blocks))
            self.chroms_seen.add(chrom)
        access = np.zeros(chunk.labels.shape, dtype=np.float64)
        for chrom in dict.fromkeys(chunk.chroms):
            rows = np.flatnonzero(chroms == chrom)
            for cell, track in enumerate(tracks):
                access[rows, cell] = track.mean(chrom, chunk.starts[rows], chunk.ends[rows])
        if config.access_transform == "log1p":
            access = np.log1p(np.maximum(access, 0.0))

        # Each row is a locus for every split its chromosome belongs to; keep rows with >= 1 example.
        membership = {name: np.zeros(len(chroms), dtype=bool) for name in self.plan.splits}
        for chrom in dict.fromkeys(chunk.chroms):
            for name in self.plan.split_of(chrom):
                membership[name] |= chroms == chrom
        usable = chunk.labels != 2
        keep = np.zeros(len(chroms), dtype=bool)
        for name, (_, cells) in self.plan.splits.items():
            keep |= membership[name] & usable[:, cells].any(axis=1)
        kept_rows = np.flatnonzero(keep)
        if len(kept_rows) == 0:
            return
        locus_ids = np.full(len(chroms), -1, dtype=np.int64)
        locus_ids[kept_rows] = self.n_loci + np.arange(len(kept_rows))
        self.n_loci += len(kept_rows)
        tag = f"{shard:05d}"
        block = np.array([self.blocks[c] for c in chroms[kept_rows]], dtype=np.int16)
        self.loci.rows.append(len(kept_rows))
        for column, values in (("seq", codes[kept_rows]), ("block", block), ("start", window_starts[kept_rows])):
            self.loci.columns[column].append(self.writer.save(f"loci/{column}-{tag}.npy", values))

        for name, (_, cells) in self.plan.splits.items():
            rows = np.flatnonzero(membership[name] & keep)
            sub = usable[np.ix_(rows, cells)]  # locus-major order, like the synthetic data
            row_of, cell_of = np.nonzero(sub)
            if len(row_of) == 0:
                continue
            source_rows, cell_ids = rows[row_of], cells[cell_of]
            columns = {
                "locus": locus_ids[source_rows],
                "cell": cell_ids.astype(np.int32),
                "y": chunk.labels[source_rows, cell_ids].astype(np.uint8),
                "access": access[source_rows, cell_ids].astype(np.float32),
            }
            self.examples[name].rows.append(len(row_of))
            for column, values in columns.items():
                saved = self.writer.save(f"splits/{name}/{column}-{tag}.npy", values)
                self.examples[name].columns.setdefault(column, []).append(saved)
            kept = self.kept[name]
            kept["y"].append(columns["y"])
            kept["cell"].append(columns["cell"])
            kept["access"].append(columns["access"])
            kept["loci"] += len(np.unique(source_rows))

    @staticmethod
    def _check_interval(chrom, rows, chunk: _Chunk, genome: Genome, config) -> None:
        if chrom not in genome.lengths:
            known = ", ".join(list(genome.lengths)[:5])
            raise DataError(
                f"chromosome {chrom!r} used by the labels is not in the genome FASTA",
                where=f"{config.labels}:{chunk.lines[rows[0]]}; {config.genome}",
                fix=f"use the FASTA the labels were made on (it has e.g. {known}) or drop these rows",
            )
        outside = rows[(chunk.starts[rows] < 0) | (chunk.ends[rows] > genome.lengths[chrom])]
        if len(outside):
            row = outside[0]
            raise DataError(
                f"label interval {chrom}:{chunk.starts[row]}-{chunk.ends[row]} lies outside the chromosome "
                f"({chrom} has {genome.lengths[chrom]} bp in the FASTA)",
                where=f"{config.labels}:{chunk.lines[row]}",
                fix="check that labels and FASTA use the same genome build",
            )

    @staticmethod
    def _check_bases(chrom, rows, codes, window_starts, chunk: _Chunk, genome: Genome, config) -> None:
        bad_row, bad_offset = np.nonzero(codes[rows] == INVALID_CODE)
        if len(bad_row):
            row = rows[bad_row[0]]
            position = int(window_starts[row] + bad_offset[0])
            letter = genome.fasta[chrom][position : position + 1]
            raise DataError(
                f"genome has the character {letter!r} at {chrom}:{position} (0-based), which is not A, C, G, T "
                f"or N",
                where=f"{config.genome} (record {chrom}, position {position}); window of {config.labels}:"
                f"{chunk.lines[row]}",
                fix="replace IUPAC ambiguity codes with N (e.g. with seqtk or sed) and re-index the FASTA",
            )

    def manifest(self, config: RealDataConfig, features, descriptors, seconds: float) -> dict:
        splits = {}
        train_access, train_cells = None, None
        for name, (_, cells) in self.plan.splits.items():
            kept = self.kept[name]
            y = np.concatenate(kept["y"]) if kept["y"] else np.empty(0, np.uint8)
            cell = np.concatenate(kept["cell"]) if kept["cell"] else np.empty(0, np.int32)
            pooled, per_cell = split_metrics(y, cell, self.plan.cells)
            splits[name] = {
                "cells": [int(c) for c in cells],
                "loci": kept["loci"],
                "examples": self.examples[name],
                "metrics": pooled,
                "per_cell": per_cell,
            }
            if name == "train":
                train_cells = cell
                train_access = np.concatenate(kept["access"]) if kept["access"] else np.zeros(1, np.float32)
        payload = json.dumps(config.model_dump(mode="json"), sort_keys=True)
        weights = np.bincount(train_cells, minlength=len(descriptors)).astype(np.float64)
        weights /= max(weights.sum(), 1.0)
        mean = weights @ descriptors
        std = np.sqrt(weights @ (descriptors - mean) ** 2)
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kind": "real",
            "created_by": f"alignguard {alignguard.__version__} data convert ({seconds:.1f} s)",
            "window": config.window,
            "descriptor_dim": len(features),
            "context_columns": list(features) + ["accessibility"],
            "cell_lines": self.plan.cells,
            "cells_file": "cells.npy",
            "blocks": list(self.blocks),
            "loci": self.loci,
            "splits": splits,
            "config": config.model_dump(mode="json"),
            "config_hash": hashlib.sha256(payload.encode()).hexdigest(),
            "truth": None,
            "context_stats": {
                "mean": [float(v) for v in mean] + [float(train_access.mean())],
                "std": [float(v) for v in std] + [float(train_access.std())],
            },
        }
