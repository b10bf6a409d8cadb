"""The on-disk format: checksums, truncation, manifest problems, atomic writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alignguard.data import store
from alignguard.data.config import SynthConfig
from alignguard.data.dataset import open_dataset
from alignguard.data.store import MANIFEST, DatasetWriter, load_manifest
from alignguard.data.synth import generate
from alignguard.errors import DataError, ExitCode


@pytest.fixture
def copy(small_dataset, tmp_path):
    """A private copy of the small dataset that a test may damage."""
    target = tmp_path / "copy"
    shutil.copytree(small_dataset, target)
    return target


def test_checksum_mismatch_names_the_shard(copy):
    shard = copy / "splits/train/y-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1  # flip one label: same size, different content
    shard.write_bytes(bytes(data))
    load_manifest(copy, verify="size")  # the fast mode cannot see it ...
    with pytest.raises(DataError) as caught:
        open_dataset(copy)  # ... the default does
    assert "splits/train/y-00000.npy" in str(caught.value) and "checksum" in str(caught.value)
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("verify", ["full", "size"])
def test_truncated_shard_is_detected_in_both_modes(copy, verify):
    shard = copy / "loci/seq-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"loci/seq-00000.npy is truncated"):
        open_dataset(copy, verify=verify)


def test_missing_shard_and_bad_manifests(copy):
    (copy / "splits/val/access-00000.npy").unlink()
    with pytest.raises(DataError, match="missing"):
        load_manifest(copy)
    (copy / MANIFEST).write_text("{ not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_manifest(copy)
    (copy / MANIFEST).write_text(json.dumps({"format": "alignguard-dataset", "version": 1}))
    with pytest.raises(DataError, match="does not match the dataset format"):
        load_manifest(copy)
    (copy / MANIFEST).write_text(json.dumps({"version": store.FORMAT_VERSION + 1}))
    with pytest.raises(DataError, match="newer than this alignguard reads"):
        load_manifest(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(DataError, match="not an alignguard dataset"):
        load_manifest(copy)


def test_manifest_cannot_point_outside_its_directory(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    entry = manifest["files"].pop("cells.npy")
    manifest["files"]["../cells.npy"] = entry
    manifest["cells_file"] = "../cells.npy"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="outside the dataset directory"):
        load_manifest(copy)


def test_header_that_disagrees_with_the_manifest(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    shard = copy / "splits/train/access-00000.npy"
    # Another dtype and length, with size and checksum updated: only the header check can catch it.
    np.save(shard, np.load(shard).astype(np.float64)[:10])
    manifest["files"]["splits/train/access-00000.npy"]["sha256"] = store.sha256_file(shard)
    manifest["files"]["splits/train/access-00000.npy"]["bytes"] = shard.stat().st_size
    (copy / MANIFEST).write_text(json.dumps(manifest))
    data = open_dataset(copy)
    with pytest.raises(DataError, match="the manifest says"):
        data.split("train").batch([0])


def test_failed_generation_leaves_nothing_behind(tmp_path, monkeypatch, small_settings):
    calls = {"n": 0}
    original = DatasetWriter.save

    def failing_save(self, relative, array):
        calls["n"] += 1
        if calls["n"] == 6:
            raise DataError("simulated failure while writing")
        return original(self, relative, array)

    monkeypatch.setattr(DatasetWriter, "save", failing_save)
    with pytest.raises(DataError, match="simulated"):
        generate(SynthConfig(**small_settings), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor a .partial directory


def test_existing_destination_needs_force(tmp_path, small_settings, small_dataset):
    config = SynthConfig(**small_settings)
    target = tmp_path / "ds"
    shutil.copytree(small_dataset, target)
    with pytest.raises(DataError, match="already exists"):
        generate(config, target)
    replaced = generate(config.model_copy(update={"seed": 9}), target, overwrite=True)
    assert load_manifest(replaced).config["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the old copy is gone too

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a dataset")
    with pytest.raises(DataError, match="refusing to replace"):
        generate(config, foreign, overwrite=True)
    assert (foreign / "notes.txt").exists()
