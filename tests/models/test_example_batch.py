"""The shared example batch: contract shapes and dtypes, determinism, a realistic, learnable signal."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import average_precision_score

from alignguard.errors import AlignguardError


@pytest.mark.parametrize("size", [1, 7, 64, 256])
def test_shapes_and_dtypes(batches, size):
    batch = batches.example_batch(size, seed=3)
    assert set(batch) == {"x", "c", "y", "cell", "locus"}
    assert batch["x"].shape == (size, 4, batches.SEQ_LEN) and batch["x"].dtype == torch.float32
    assert batch["c"].shape == (size, batches.DESCRIPTOR_DIM + 1) and batch["c"].dtype == torch.float32
    for key, dtype in (("y", torch.float32), ("cell", torch.int64), ("locus", torch.int64)):
        assert batch[key].shape == (size,) and batch[key].dtype == dtype
    assert set(batch["y"].unique().tolist()) <= {0.0, 1.0}


def test_x_is_one_hot_with_n_as_zeros(batches):
    x = batches.example_batch(2048, seed=0)["x"]
    assert set(x.unique().tolist()) == {0.0, 1.0}
    per_position = x.sum(dim=1)
    assert set(per_position.unique().tolist()) == {0.0, 1.0}  # 0 = an N (runs are planted)


def test_context_is_the_cell_descriptor_then_accessibility(batches):
    batch = batches.example_batch(512, seed=1)
    descriptors = batches._world()["descriptors"]
    assert torch.equal(batch["c"][:, :-1], descriptors[batch["cell"]])
    access = batch["c"][:, -1]
    assert access.min() >= 0 and access.max() <= 1 and access.std() > 0.1
    assert batch["cell"].min() >= 0 and batch["cell"].max() < batches.N_CELL_LINES


def test_deterministic_per_seed(batches):
    first, again, other = (batches.example_batch(128, s) for s in (5, 5, 6))
    for key in first:
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["x"], other["x"])


def test_paired_loci_share_x_under_different_contexts(batches):
    batch = batches.example_batch(64, seed=2)
    locus, cell = batch["locus"], batch["cell"]
    pairs = 0
    for value in locus.unique():
        rows = torch.nonzero(locus == value).flatten()
        if rows.numel() < 2:
            continue
        pairs += 1
        assert torch.equal(batch["x"][rows[0]], batch["x"][rows[1]])
        assert cell[rows[0]] != cell[rows[1]]
        assert not torch.equal(batch["c"][rows[0]], batch["c"][rows[1]])
    assert pairs >= 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_rate_is_about_one_in_eight(batches, seed):
    rate = batches.example_batch(4096, seed)["y"].mean().item()
    assert 0.09 <= rate <= 0.16, rate


def test_labels_depend_on_sequence_and_on_context(batches):
    batch = batches.example_batch(4096, seed=7)
    y, rate = batch["y"], batch["y"].mean().item()
    sequence_ap = average_precision_score(y, batches.motif_energy(batch["x"]))
    access_ap = average_precision_score(y, batch["c"][:, -1])
    assert sequence_ap > 3 * rate, (sequence_ap, rate)
    assert access_ap > 1.4 * rate, (access_ap, rate)
    per_cell = [y[batch["cell"] == k].mean().item() for k in range(batches.N_CELL_LINES)]
    assert max(per_cell) > 2 * min(per_cell)  # binding differs between cell lines


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "64"])
def test_bad_batch_size_is_a_readable_error(batches, bad):
    with pytest.raises(AlignguardError, match="batch_size"):
        batches.example_batch(bad, seed=0)


def test_both_model_files_use_the_shared_generator(cmdn, legacy):
    a, b = cmdn.example_batch(32, 9), legacy.example_batch(32, 9)
    assert all(torch.equal(a[key], b[key]) for key in a)
