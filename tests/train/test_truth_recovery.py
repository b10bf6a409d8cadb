"""Truth recovery on the built-in benchmark's hidden M*, T*, and the T-vs-accessibility alarm."""

from __future__ import annotations

import numpy as np

from alignguard.train.monitor import epoch_alarms
from alignguard.train.probes import run_probes, truth_recovery
from tests.stand_ins import ModuleStandIn

CELLS = ["c0", "c1", "c2"]
TRUTH = {name: {"M": m, "T_at_half_access": t, "T_access_slope": 1.0}
         for name, m, t in zip(CELLS, (0.8, 1.2, 2.0), (0.7, 1.0, 1.5))}


def world(rows: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    cell = np.repeat(np.arange(3), rows)
    access = rng.random(3 * rows)
    return cell, access


def test_a_model_in_another_gauge_recovers_the_truth():
    cell, access = world()
    t_star = np.array([TRUTH[CELLS[c]]["T_at_half_access"] for c in cell]) * np.exp(-(access - 0.5))
    m_star = np.array([TRUTH[CELLS[c]]["M"] for c in cell])
    k = np.array([2.0, 0.5, 3.0])[cell]  # a per-cell gauge (M, B, T) -> k(c)(M, B, T): predicts the same
    recovery = truth_recovery({"M": k * m_star, "T": k * t_star}, cell, access, CELLS, TRUTH)
    assert recovery["corr_T_truth_within_mean"] > 0.999
    assert recovery["corr_T_access_within_mean"] < -0.99
    assert abs(recovery["corr_M_truth_across_cells"] - 1.0) < 1e-9  # M* brought to the model's gauge
    row = recovery["per_cell"]["c2"]
    assert abs(row["gauge_k"] - 3.0) < 1e-9 and abs(row["M_truth_in_model_gauge"] - 6.0) < 1e-9


def test_a_flat_T_is_not_judged_and_raises_no_alarm():
    cell, access = world()
    flat = 1.0 + 1e-3 * access  # an untrained head: constant up to initialisation noise, rising with a
    probes = run_probes({"T": flat, "M": np.ones_like(flat)}, cell, access, CELLS, truth=TRUTH)
    assert probes["corr_T_access"] > 0.9 and probes["corr_T_access_within"] is None
    assert probes["truth_recovery"]["cells_with_varying_T"] == 0
    validation = {"pooled": {"positive_rate": 0.1, "predicted_positive_rate": 0.1, "accuracy": 0.9}}
    assert not [a for a in epoch_alarms(1, 10, [1.0], validation, probes, 1e-3, 0.05) if a.kind == "implausible"]


def test_a_T_rising_within_cell_lines_raises_the_alarm():
    cell, access = world()
    rising = np.exp(0.5 * access) * np.array([1.0, 3.0, 0.2])[cell]
    probes = run_probes({"T": rising}, cell, access, CELLS)
    validation = {"pooled": {"positive_rate": 0.1, "predicted_positive_rate": 0.1, "accuracy": 0.9}}
    (alarm,) = [a for a in epoch_alarms(1, 10, [1.0], validation, probes, 1e-3, 0.05) if a.kind == "implausible"]
    assert "within cell lines (mean) = 1.00" in alarm.message


def test_a_truth_without_variation_has_no_correlation():
    cell, access = world()
    flat_truth = {name: {"M": 1.0, "T_at_half_access": 1.0, "T_access_slope": 0.0} for name in CELLS}
    T = np.exp(0.3 * access) * np.array([1.0, 1.1, 0.9])[cell]
    recovery = truth_recovery({"M": np.array([1.0, 2.0, 3.0])[cell], "T": T}, cell, access, CELLS, flat_truth)
    assert recovery["corr_M_truth_across_cells"] is None and recovery["corr_T_truth_within_mean"] is None
    assert recovery["corr_T_access_within_mean"] > 0.99


# --- the panel of unseen cell lines (train/panel.py) ------------------------------------------------

def _panel(cells: int = 40, seed: int = 1):
    rng = np.random.default_rng(seed)
    descriptors = rng.normal(size=(cells, 2)).astype(np.float32)
    return {"descriptors": descriptors.tolist(), "M": np.exp(0.5 * descriptors[:, 0]).tolist(),
            "T_at_half_access": np.exp(0.4 * descriptors[:, 1]).tolist(), "T_access_slope": 1.0}


class _GaugedModel(ModuleStandIn):
    """M and T of the panel's truth in another per-cell gauge k(d) (which predicts the same), or with
    M replaced by noise; forward(x, c) like a model file's module."""

    def __init__(self, noise_m: bool = False):
        import torch

        self.torch, self.noise_m, self.training = torch, noise_m, False

    def __call__(self, x, c):
        torch = self.torch
        d, a = c[:, :2], c[:, -1]
        k = torch.exp(0.7 * d[:, 1])  # a per-cell gauge, not 1/T*(d, 1/2): the recovery must undo it
        m = torch.exp(0.5 * d[:, 0])
        t = torch.exp(0.4 * d[:, 1] - (a - 0.5))
        if self.noise_m:  # M unrelated to the truth in any gauge
            return {"M": torch.exp(torch.sin(13.0 * d[:, 0] * d[:, 1])), "T": k * t, "logit": x.sum(-1) * 0}
        return {"M": k * m, "T": k * t, "logit": x.sum(-1) * 0}


class _Split:
    def __init__(self, rows: int = 7):
        self.rows = rows

    def __len__(self):
        return self.rows

    def batch(self, indices):
        return {"x": np.ones((len(indices), 4), np.float32), "c": np.zeros((len(indices), 3), np.float32),
                "y": np.zeros(len(indices), np.float32), "cell": np.zeros(len(indices), np.int64)}


def _recover(model, panel, batch_size=16):
    from alignguard.train.panel import panel_recovery

    return panel_recovery(model, panel, _Split(), forward=lambda b: model(b["x"], b["c"]), to_device=lambda b: b,
                          output_keys={"M": "M", "T": "T"}, batch_size=batch_size)


def test_the_panel_recovers_M_in_the_models_gauge_across_many_cell_lines():
    recovery = _recover(_GaugedModel(), _panel())
    assert recovery["cells"] == 40 and abs(recovery["corr_M_truth"] - 1.0) < 1e-6


def test_the_panel_tells_an_M_unrelated_to_the_truth_with_its_interval():
    recovery = _recover(_GaugedModel(noise_m=True), _panel(cells=200))
    low, high = recovery["corr_M_truth_ci95"]
    assert abs(recovery["corr_M_truth"]) < 0.3 and low < recovery["corr_M_truth"] < high and high - low < 0.3


def test_no_panel_or_no_M_gives_no_panel_figure():
    class NoM(_GaugedModel):
        def __call__(self, x, c):
            return {"T": super().__call__(x, c)["T"], "logit": x.sum(-1)}

    assert _recover(_GaugedModel(), None) is None
    assert _recover(NoM(), _panel()) is None


def test_fisher_interval():
    from alignguard.train.panel import fisher_interval

    low, high = fisher_interval(0.5, 103)
    assert abs(low - 0.339) < 0.002 and abs(high - 0.632) < 0.002
    assert fisher_interval(0.9, 3) is None
