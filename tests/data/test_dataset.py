"""The dataset interface the trainer consumes: batch contract, pairs, loaders, the synthetic cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignguard.data import synth as synth_module
from alignguard.data.config import SynthConfig
from alignguard.data.dataset import collate, open_dataset, synth_dataset
from alignguard.errors import DataError


@pytest.fixture(scope="module")
def data(small_dataset):
    return open_dataset(small_dataset)


def test_batch_contract(data, small_config):
    train = data.split("train")
    index = np.array([5, 0, 17, len(train) - 1])
    batch = train.batch(index)
    assert set(batch) == {"x", "c", "y", "cell", "locus", "p_true"}
    b, d = len(index), small_config.descriptor_dim
    assert batch["x"].shape == (b, 4, small_config.window) and batch["x"].dtype == torch.float32
    assert batch["c"].shape == (b, d + 1) and batch["c"].dtype == torch.float32
    for key in ("y", "p_true"):
        assert batch[key].shape == (b,) and batch[key].dtype == torch.float32
    for key in ("cell", "locus"):
        assert batch[key].shape == (b,) and batch[key].dtype == torch.int64
    assert torch.all(batch["x"].sum(dim=1) == 1)  # synthetic windows have no N
    assert set(batch["y"].tolist()) <= {0.0, 1.0}
    descriptors = torch.from_numpy(data.descriptors)[batch["cell"]]
    torch.testing.assert_close(batch["c"][:, :d], descriptors)
    assert torch.all((batch["c"][:, -1] > 0) & (batch["c"][:, -1] < 1))  # accessibility in (0, 1)
    assert data.context_dim == d + 1
    # Same examples, same tensors: single items collated equal the vectorised batch.
    stacked = collate([train[int(i)] for i in index])
    for key in batch:
        torch.testing.assert_close(stacked[key], batch[key])


def test_pairs_share_the_locus_and_differ_in_cell_line(data):
    first, second = data.pairs("train", 64, np.random.default_rng(0))
    assert torch.equal(first["locus"], second["locus"])
    assert torch.equal(first["x"], second["x"])
    assert torch.all(first["cell"] != second["cell"])
    assert not torch.equal(first["c"], second["c"])
    again, _ = data.pairs("train", 64, 0)
    assert torch.equal(again["locus"], first["locus"])  # reproducible from the seed


def test_loader_covers_the_split_once_per_epoch(data):
    loader = data.loader("val", batch_size=100, shuffle=True, seed=1)
    seen = torch.cat([batch["locus"] * 100 + batch["cell"] for batch in loader])
    val = data.split("val")
    expected = torch.from_numpy(val.loci() * 100 + val.cells())
    assert torch.equal(seen.sort().values, expected.sort().values)
    first_order = torch.cat([b["locus"] for b in data.loader("val", batch_size=100, shuffle=True, seed=1)])
    other_order = torch.cat([b["locus"] for b in data.loader("val", batch_size=100, shuffle=True, seed=2)])
    assert not torch.equal(first_order, other_order)


def test_loader_with_worker_processes(data):
    loader = data.loader("test", batch_size=128, num_workers=2)
    batches = list(loader)
    assert sum(len(b["y"]) for b in batches) == len(data.split("test"))
    assert batches[0]["x"].shape[1:] == (4, data.window)


def test_split_names_cells_and_metrics(data, small_config):
    assert data.split_names == ["train", "val", "test"]
    assert len(data.cell_lines()) == small_config.n_cells
    assert data.bayes("test").bayes_aupr is not None
    with pytest.raises(DataError, match="has no split 'tset'"):
        data.split("tset")
    with pytest.raises(IndexError):
        data.split("val").batch([len(data.split("val"))])


def test_synth_dataset_caches_by_config(tmp_path, monkeypatch, small_settings):
    config = SynthConfig(**small_settings)
    first = synth_dataset(config, tmp_path)
    assert first.path.name == f"synth-{config.config_hash()[:16]}"

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached dataset should have been reused")

    monkeypatch.setattr(synth_module, "generate", must_not_run)
    assert synth_dataset(config, tmp_path).path == first.path
    monkeypatch.undo()

    # A corrupt cache entry is regenerated, not trusted.
    shard = first.path / "splits/train/y-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-3])
    repaired = synth_dataset(config, tmp_path)
    assert len(repaired.split("train")) == len(first.split("train"))
    # A different config gets a different entry.
    other = synth_dataset(config.model_copy(update={"seed": 11}), tmp_path)
    assert other.path != first.path


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNGUARD_CACHE", str(tmp_path / "cache"))
    assert synth_module.default_cache_dir() == tmp_path / "cache" / "data"
