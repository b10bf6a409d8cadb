"""The on-disk dataset format: a directory of NumPy `.npy` shards plus `manifest.json`.

Writes go to a hidden sibling directory that is renamed into place only when every shard and the
manifest are complete, so a crash never leaves a half-written dataset under the final name. Loads
check every file's size (always) and SHA-256 (by default) against the manifest, then memory-map.
The layout is documented in docs/data.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from alignguard.errors import DataError
from alignguard.strict import StrictModel

FORMAT_NAME = "alignguard-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
Verify = Literal["full", "size"]


class FileEntry(StrictModel):
    sha256: str
    bytes: int
    shape: list[int]
    dtype: str


class ShardSet(StrictModel):
    """Columns split into shards along the first axis; shard i of every column has rows[i] rows."""

    rows: list[int] = []
    columns: dict[str, list[str]] = {}

    @property
    def total(self) -> int:
        return int(sum(self.rows))


class SplitMetrics(StrictModel):
    examples: int
    positives: int
    positive_rate: float | None  # also the expected AUPR of a random ranker
    mean_p_true: float | None = None
    bayes_aupr: float | None = None
    bayes_auroc: float | None = None
    bayes_log_loss: float | None = None
    sequence_only_aupr: float | None = None
    per_cell_bayes_aupr_mean: float | None = None


class SplitEntry(StrictModel):
    cells: list[int]  # indices into Manifest.cell_lines
    loci: int  # distinct loci in the split
    examples: ShardSet  # columns locus, cell, y, access (+ p_true when known)
    metrics: SplitMetrics
    per_cell: dict[str, SplitMetrics]


class Manifest(StrictModel):
    format: Literal["alignguard-dataset"]
    version: int
    kind: Literal["synthetic", "real"]
    created_by: str
    window: int
    descriptor_dim: int
    context_columns: list[str]
    cell_lines: list[str]
    cells_file: str  # (n_cells, D) float32 descriptors
    blocks: list[str]  # chromosome (real) or chromosome-like block (synthetic) names
    loci: ShardSet  # columns seq (uint8 codes), block (int16), start (int64) [, energy (float32)]
    splits: dict[str, SplitEntry]
    files: dict[str, FileEntry]
    config: dict[str, Any]
    config_hash: str | None = None
    truth: dict[str, Any] | None = None
    context_stats: dict[str, list[float]] | None = None


class _HashingWriter:
    """File wrapper that hashes and counts the bytes np.save writes, so no second read is needed."""

    def __init__(self, handle):
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        return self.handle.write(view)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DatasetWriter:
    """Collects shards in a temporary sibling directory; `commit` renames it into place."""

    def __init__(self, destination: Path, *, overwrite: bool = False):
        self.destination = Path(destination).absolute()
        self.overwrite = overwrite
        self.files: dict[str, FileEntry] = {}
        self.temporary: Path | None = None

    def __enter__(self) -> DatasetWriter:
        if self.destination.exists() and not self.destination.is_dir():
            raise DataError(f"{self.destination} is a file, not a dataset directory", where=str(self.destination),
                            fix="choose a directory for --out (--force replaces datasets, never other files)")
        if self.destination.exists() and not self.overwrite:
            raise DataError(
                f"{self.destination} already exists",
                where=str(self.destination),
                fix="choose another --out directory or pass --force to replace it",
            )
        if self.destination.exists() and any(self.destination.iterdir()):
            if not (self.destination / MANIFEST).is_file():
                raise DataError(
                    f"refusing to replace {self.destination}: it is not empty and holds no {MANIFEST}",
                    where=str(self.destination),
                    fix="point --out at a new directory or an existing alignguard dataset",
                )
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.destination.parent / f".{self.destination.name}.partial-{uuid.uuid4().hex[:8]}"
        self.temporary.mkdir()
        return self

    def save(self, relative: str, array: np.ndarray) -> str:
        target = self.temporary / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        array = np.ascontiguousarray(array)
        with open(target, "wb") as handle:
            hashing = _HashingWriter(handle)
            np.lib.format.write_array(hashing, array, allow_pickle=False)
        self.files[relative] = FileEntry(
            sha256=hashing.digest.hexdigest(), bytes=hashing.size, shape=list(array.shape), dtype=array.dtype.str
        )
        return relative

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Validate and write the manifest, then move the finished directory to its final name."""
        try:
            checked = Manifest(**manifest, files=self.files)
        except ValidationError as error:  # a bug in a writer, not user input: still say it plainly
            raise DataError(f"internal error: the manifest being written is invalid: {error}") from error
        (self.temporary / MANIFEST).write_text(checked.model_dump_json(indent=1))
        retired = None
        if self.destination.exists() and not self.overwrite:
            raise DataError(
                f"{self.destination} appeared while this dataset was being written (another process?)",
                where=str(self.destination),
                fix="use the dataset already there, or pass --force to replace it",
            )
        if self.destination.exists():
            retired = self.destination.parent / f".{self.destination.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.destination, retired)
        os.rename(self.temporary, self.destination)
        self.temporary = None
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        return self.destination

    def __exit__(self, *exc_info) -> None:
        if self.temporary is not None:  # failed or abandoned: leave nothing behind
            shutil.rmtree(self.temporary, ignore_errors=True)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise DataError(
            f"manifest names a file outside the dataset directory: {relative!r}",
            where=str(root / MANIFEST),
            fix="regenerate the dataset; manifests list paths relative to their directory",
        )
    return path


def load_manifest(root: Path, verify: Verify = "full") -> Manifest:
    """Read and check a manifest; verify sizes (always) and SHA-256 (verify='full') of every file."""
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(
            f"{root} is not an alignguard dataset (no {MANIFEST})",
            where=str(root),
            fix="create one with `alignguard data synth --out DIR` or `alignguard data convert`",
        )
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(
            f"{MANIFEST} is not valid JSON: {error}", where=str(manifest_path), fix="regenerate the dataset"
        ) from error
    if isinstance(raw, dict) and isinstance(raw.get("version"), int) and raw["version"] > FORMAT_VERSION:
        raise DataError(
            f"dataset format version {raw['version']} is newer than this alignguard reads ({FORMAT_VERSION})",
            where=str(manifest_path),
            fix="upgrade alignguard or regenerate the dataset with this version",
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise DataError(
            f"{MANIFEST} does not match the dataset format: {location}: {first['msg']}",
            where=f"{manifest_path} (record {location})",
            fix="regenerate the dataset",
        ) from error
    _check_references(root, manifest)
    for relative, entry in manifest.files.items():
        _verify_file(root, relative, entry, verify)
    return manifest


def _check_references(root: Path, manifest: Manifest) -> None:
    referenced = [manifest.cells_file]
    for shard_set in [manifest.loci] + [split.examples for split in manifest.splits.values()]:
        for files in shard_set.columns.values():
            referenced.extend(files)
    for relative in referenced:
        if relative not in manifest.files:
            raise DataError(
                f"shard {relative!r} is used but has no checksum entry in {MANIFEST}",
                where=str(root / MANIFEST),
                fix="regenerate the dataset",
            )


def _verify_file(root: Path, relative: str, entry: FileEntry, verify: Verify) -> None:
    path = _inside(root, relative)
    if not path.is_file():
        raise DataError(
            f"shard {relative} listed in {MANIFEST} is missing",
            where=str(path),
            fix="restore the file or regenerate the dataset",
        )
    size = path.stat().st_size
    if size != entry.bytes:
        state = "truncated" if size < entry.bytes else "longer than recorded"
        raise DataError(
            f"shard {relative} is {state}: {size} bytes on disk, {entry.bytes} in {MANIFEST}",
            where=str(path),
            fix="the copy is incomplete or corrupt; copy it again or regenerate the dataset",
        )
    if verify == "full" and sha256_file(path) != entry.sha256:
        raise DataError(
            f"shard {relative} fails its checksum: its SHA-256 differs from the one in {MANIFEST}",
            where=str(path),
            fix="the file is corrupt or was edited; copy it again or regenerate the dataset",
        )


class ShardedColumn:
    """One column across shards, memory-mapped lazily; `take` gathers rows by global index."""

    def __init__(self, root: Path, files: list[str], rows: list[int], entries: dict[str, FileEntry]):
        self.root, self.files, self.entries = Path(root), list(files), entries
        self.offsets = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])
        self._arrays: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict:  # DataLoader workers re-open the memmaps instead of copying them
        return {**self.__dict__, "_arrays": None}

    @property
    def arrays(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [self._open(relative) for relative in self.files]
        return self._arrays

    def _open(self, relative: str) -> np.ndarray:
        path, entry = self.root / relative, self.entries[relative]
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(
                f"shard {relative} cannot be read as a NumPy array: {error}",
                where=str(path),
                fix="regenerate the dataset",
            ) from error
        if list(array.shape) != entry.shape or array.dtype.str != entry.dtype:
            raise DataError(
                f"shard {relative} holds {array.dtype.str}{list(array.shape)}, "
                f"the manifest says {entry.dtype}{entry.shape}",
                where=str(path),
                fix="regenerate the dataset",
            )
        return array

    def take(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        arrays = self.arrays
        if len(arrays) == 1:
            return np.asarray(arrays[0][index])
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        out = np.empty((len(index), *arrays[0].shape[1:]), dtype=arrays[0].dtype)
        for s in np.unique(shard):
            rows = shard == s
            out[rows] = arrays[s][index[rows] - self.offsets[s]]
        return out

    def read_all(self, empty_dtype: str = "f4") -> np.ndarray:
        if not self.files:
            return np.empty((0,), dtype=empty_dtype)
        return np.concatenate([np.asarray(a) for a in self.arrays])
