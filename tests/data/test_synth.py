"""The synthetic benchmark: determinism, the documented formula, calibration, splits, Bayes metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, log_loss

from alignguard.data import groundtruth
from alignguard.data.config import SynthConfig
from alignguard.data.dataset import open_dataset
from alignguard.data.store import load_manifest
from alignguard.data.synth import build_world, generate


def _loci_column(data, name: str) -> np.ndarray:
    files = data.manifest.loci.columns[name]
    return np.concatenate([np.load(data.path / f) for f in files])


def _examples(data, split: str):
    dataset = data.split(split)
    return dataset.loci(), dataset.cells(), dataset.labels(), dataset.p_true()


def test_generation_is_deterministic_and_seed_dependent(tmp_path, small_config, small_dataset):
    again = generate(small_config, tmp_path / "again")
    first, second = load_manifest(small_dataset), load_manifest(again)
    assert {k: v.sha256 for k, v in first.files.items()} == {k: v.sha256 for k, v in second.files.items()}
    other = generate(small_config.model_copy(update={"seed": 4}), tmp_path / "other")
    assert load_manifest(other).files["loci/seq-00000.npy"].sha256 != first.files["loci/seq-00000.npy"].sha256


def test_p_true_follows_the_documented_multiplicative_formula(small_dataset, small_config):
    data = open_dataset(small_dataset)
    energy = _loci_column(data, "energy")
    cells = data.truth["cells"]
    names = data.cell_lines()
    checked = 0
    for split in data.split_names:
        dataset = data.split(split)
        locus, cell, _, p = _examples(data, split)
        access = dataset.batch(np.arange(len(dataset)))["c"][:, -1].numpy().astype(np.float64)
        keep = (p > 1e-4) & (p < 1 - 1e-4)  # float32 p_true: logit is precise away from 0 and 1
        m = np.array([cells[names[c]]["M"] for c in cell])
        beta0 = np.array([cells[names[c]]["beta0"] for c in cell])
        t_half = np.array([cells[names[c]]["T_at_half_access"] for c in cell])
        alpha = np.log(access / (1 - access))
        t = t_half * np.exp(-groundtruth.LOG_T_ACCESS_SCALE * small_config.access_effect * (access - 0.5))
        b = beta0 + groundtruth.B_ACCESS_SCALE * small_config.access_effect * alpha
        expected = (m * energy[locus] + b) / t
        observed = np.log(p / (1 - p))
        np.testing.assert_allclose(observed[keep], expected[keep], atol=2e-2, rtol=1e-3)
        checked += keep.sum()
    assert checked > 1000


def test_additive_mechanism_has_one_slope_and_one_temperature(tmp_path, small_settings):
    config = SynthConfig(**small_settings, mechanism="additive")
    data = open_dataset(generate(config, tmp_path / "additive"))
    assert all(c["M"] == 1.0 and c["T_at_half_access"] == 1.0 for c in data.truth["cells"].values())
    energy = _loci_column(data, "energy")
    dataset = data.split("train")
    locus, cell, _, p = _examples(data, "train")
    access = dataset.batch(np.arange(len(dataset)))["c"][:, -1].numpy().astype(np.float64)
    keep = (p > 1e-4) & (p < 1 - 1e-4)
    # logit p - U* - k_B logit(a) = beta0(c): constant within each cell line.
    residual = np.log(p / (1 - p)) - energy[locus] - groundtruth.B_ACCESS_SCALE * np.log(access / (1 - access))
    for c in np.unique(cell):
        assert np.ptp(residual[keep & (cell == c)]) < 0.05


@pytest.mark.parametrize("rate", [0.125, 0.01])
def test_training_positive_rate_matches_the_target(tmp_path, rate):
    config = SynthConfig(n_loci=4000, seed=1, positive_rate=rate)
    manifest = load_manifest(generate(config, tmp_path / "rate"))
    train = manifest.splits["train"].metrics
    assert abs(train.mean_p_true - rate) < 0.25 * rate + 0.003
    assert abs(train.positive_rate - rate) < 0.3 * rate + 0.005


def test_splits_hold_out_cells_and_locus_blocks(small_dataset, small_config):
    data = open_dataset(small_dataset)
    train_loci, train_cells, *_ = _examples(data, "train")
    blocks = _loci_column(data, "block")
    seen_descriptors = data.descriptors[np.unique(train_cells)]
    for split in ("val", "test"):
        loci, cells, *_ = _examples(data, split)
        assert not set(loci) & set(train_loci)
        assert not set(blocks[loci]) & set(blocks[train_loci])  # whole chromosome-like blocks held out
        assert not set(cells) & set(train_cells)
        for descriptor in data.descriptors[np.unique(cells)]:
            assert not (np.abs(seen_descriptors - descriptor).max(axis=1) < 1e-6).any()
    assert len(data.cell_lines("train")) == small_config.cells_train
    assert len(data.cell_lines("test")) == small_config.cells_test


def test_binding_flips_between_cell_lines_at_a_locus(small_dataset):
    data = open_dataset(small_dataset)
    loci, _, y, p = _examples(data, "train")
    order = np.argsort(loci, kind="stable")
    grouped_y = y[order].reshape(-1, 3)  # 3 training cell lines per locus, locus-major
    grouped_p = p[order].reshape(-1, 3)
    assert (loci[order].reshape(-1, 3) == loci[order].reshape(-1, 3)[:, :1]).all()
    flips = (grouped_y.min(axis=1) == 0) & (grouped_y.max(axis=1) == 1)
    assert flips.mean() > 0.03
    assert (grouped_p.max(axis=1) - grouped_p.min(axis=1) > 0.5).mean() > 0.02


def test_manifest_bayes_metrics_match_a_recomputation(small_dataset):
    data = open_dataset(small_dataset)
    for split in data.split_names:
        _, cells, y, p = _examples(data, split)
        reference = data.bayes(split)
        assert reference.examples == len(y) and reference.positives == int(y.sum())
        assert reference.positive_rate == pytest.approx(y.mean())
        assert reference.bayes_aupr == pytest.approx(average_precision_score(y, p), abs=1e-9)
        assert reference.bayes_log_loss == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), abs=1e-6)
        assert reference.bayes_aupr > reference.positive_rate  # the ceiling beats a random ranker
        per_cell = data.bayes_per_cell(split)
        assert set(per_cell) == set(data.cell_lines(split))
        for name, metrics in per_cell.items():
            rows = cells == data.cell_lines().index(name)
            assert metrics.bayes_aupr == pytest.approx(average_precision_score(y[rows], p[rows]), abs=1e-9)


def test_context_matters_beyond_sequence(tmp_path):
    """On the default world the Bayes ceiling clearly beats the best sequence-only ranking."""
    manifest = load_manifest(generate(SynthConfig(n_loci=3000), tmp_path / "default"))
    train = manifest.splits["train"].metrics
    assert train.bayes_aupr > train.sequence_only_aupr + 0.1
    assert train.sequence_only_aupr > train.positive_rate + 0.05  # and sequence still matters


def test_backgrounds_follow_gc_and_cpg_depletion():
    iid = SynthConfig(n_loci=100, window=400, gc=0.6, plant_rate=0.0)
    codes = groundtruth.sample_background(iid, 2000, np.random.default_rng(0))
    assert np.isin(codes, [1, 2]).mean() == pytest.approx(0.6, abs=0.01)
    markov = iid.model_copy(update={"background": "markov", "cpg_depletion": 0.2})
    codes = groundtruth.sample_background(markov, 2000, np.random.default_rng(0))
    after_c = codes[:, 1:][codes[:, :-1] == 1]
    after_g = codes[:, 1:][codes[:, :-1] == 2]
    expected = groundtruth.markov_transitions(0.6, 0.2)[1, 2]  # 0.06 / 0.76
    assert (after_c == 2).mean() == pytest.approx(expected, abs=0.005)  # CpG depleted ...
    assert (after_g == 1).mean() == pytest.approx(0.3, abs=0.01)  # ... GpC not


def test_cofactor_raises_energy_of_loci_carrying_it():
    config = SynthConfig(n_loci=200, cofactor="MA0079.5", cofactor_weight=1.0)
    world = build_world(config)
    codes = groundtruth.sample_background(config, 400, np.random.default_rng(0))
    with_site = codes.copy()
    with_site[:, 50:59] = world.energy.cofactor.counts.argmax(axis=0)
    assert (world.energy(with_site) > world.energy(codes)).mean() > 0.95


def test_sharded_generation_matches_its_manifest(tmp_path, small_settings):
    config = SynthConfig(**{**small_settings, "shard_loci": 200})
    data = open_dataset(generate(config, tmp_path / "sharded"))
    assert len(data.manifest.loci.rows) == 5  # 900 loci in shards of 200
    assert data.manifest.loci.total == 900
    train = data.split("train")
    batch = train.batch(np.arange(len(train)))
    sequences = _loci_column(data, "seq")
    expected = np.eye(4, dtype=np.float32)[sequences[batch["locus"].numpy()]].transpose(0, 2, 1)
    np.testing.assert_array_equal(batch["x"].numpy(), expected)


def test_diagnostic_splits(tmp_path, small_settings):
    data = open_dataset(generate(SynthConfig(**small_settings, diagnostic_splits=True), tmp_path / "diag"))
    assert data.split_names == ["train", "val", "test", "test_new_cells", "test_new_loci"]
    assert data.cell_lines("test_new_cells") == data.cell_lines("test")
    assert set(data.split("test_new_cells").loci()) == set(data.split("train").loci())
    assert set(data.split("test_new_loci").loci()) == set(data.split("test").loci())


def test_default_size_generates_a_benchmark_of_forty_thousand_examples(tmp_path):
    path = generate(SynthConfig(), tmp_path / "default")
    manifest = json.loads((path / "manifest.json").read_text())
    examples = sum(split["metrics"]["examples"] for split in manifest["splits"].values())
    assert examples > 40_000


def test_instances_are_planted_on_both_strands():
    config = SynthConfig(n_loci=100, window=60)
    motif = build_world(config).energy.motif
    codes = np.full((2000, 60), 4, dtype=np.uint8)  # all N, so the planted instance is all there is
    groundtruth.plant(codes, motif, 1.0, np.random.default_rng(0))
    instances = codes[codes != 4].reshape(2000, motif.length)
    log_odds = motif.log_odds(np.full(4, 0.25))
    columns = np.arange(motif.length)
    forward = log_odds[instances, columns].sum(axis=1)
    reverse = log_odds[(3 - instances)[:, ::-1], columns].sum(axis=1)
    minus_strand = (reverse > forward).mean()
    assert 0.4 < minus_strand < 0.6
    starts = np.argmax(codes != 4, axis=1)
    assert starts.min() == 0 and starts.max() == 60 - motif.length  # every position is possible


def test_the_truth_panel_records_unseen_cell_lines_without_changing_the_splits(tmp_path):
    from alignguard.data.config import SynthConfig
    from alignguard.data.synth import build_world, generate

    small = dict(n_loci=200, window=40, locus_blocks=5, val_blocks=1, test_blocks=1)
    with_panel = build_world(SynthConfig(**small, truth_panel=50))
    without = build_world(SynthConfig(**small, truth_panel=0))
    np.testing.assert_array_equal(with_panel.descriptors, without.descriptors)
    np.testing.assert_array_equal(with_panel.truth.baseline, without.truth.baseline)
    assert with_panel.panel_descriptors.shape == (50, 8) and without.panel_descriptors.shape == (0, 8)
    assert not np.isin(with_panel.panel_descriptors, with_panel.descriptors).any()
    path = generate(SynthConfig(**small, truth_panel=5), tmp_path / "d")
    import json

    panel = json.loads((path / "manifest.json").read_text())["truth"]["panel"]
    assert len(panel["descriptors"]) == len(panel["M"]) == len(panel["T_at_half_access"]) == 5
    assert min(panel["M"]) > 0 and len(set(panel["M"])) == 5
