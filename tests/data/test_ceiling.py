"""The model-free ceiling of corr(M, M*) over the unseen panel (alignguard/data/ceiling.py)."""

from __future__ import annotations

import numpy as np
import pytest

from alignguard.data.ceiling import STRENGTHS, m_ceiling, training_fit
from alignguard.data.config import SynthConfig
from alignguard.data.synth import build_world, draw_cells
from tests.stand_ins import ModuleStandIn


def test_draw_cells_is_what_the_generator_uses():
    config = SynthConfig(seed=2, cells_train=5, truth_panel=20)
    world, cells = build_world(config), draw_cells(config)
    np.testing.assert_array_equal(world.descriptors, cells.descriptors.astype(np.float32))
    np.testing.assert_array_equal(world.truth.m, cells.truth.m)
    np.testing.assert_array_equal(world.truth.log_t_cell, cells.truth.log_t_cell)
    np.testing.assert_array_equal(world.panel_descriptors, cells.panel_descriptors.astype(np.float32))
    np.testing.assert_array_equal(world.panel.m, cells.panel.m)


class _OracleModel(ModuleStandIn):
    """M = exp(the ceiling's linear fit of the descriptor), T = exp(-(a - 1/2)): CMDN's gauge, exact."""

    def __init__(self, fit):
        import torch

        self.torch, self.training = torch, False
        self.coef = torch.tensor(fit.coef_, dtype=torch.float32)
        self.intercept = float(fit.intercept_)

    def __call__(self, x, c):
        torch = self.torch
        d, a = c[:, :-1], c[:, -1]
        return {"M": torch.exp(d @ self.coef + self.intercept), "T": torch.exp(-(a - 0.5)), "logit": x.sum(-1) * 0}


class _Split:
    def __len__(self):
        return 4

    def batch(self, indices):
        return {"x": np.ones((len(indices), 4), np.float32), "c": np.zeros((len(indices), 9), np.float32)}


def test_the_ceiling_is_the_panel_figure_of_a_model_holding_the_fit():
    """A model whose M is the ceiling's fit scores exactly the ceiling in `train/panel.py`: same truth, same gauge."""
    from alignguard.train.panel import panel_recovery

    config = SynthConfig(seed=1, cells_train=8)
    cells, ceiling = draw_cells(config), m_ceiling(config)
    panel = {"descriptors": cells.panel_descriptors.tolist(), "M": cells.panel.m.tolist(),
             "T_at_half_access": np.exp(cells.panel.log_t_cell).tolist(), "T_access_slope": 1.0}
    model = _OracleModel(training_fit(config, ceiling.chosen_strength))
    recovery = panel_recovery(model, panel, _Split(), forward=lambda b: model(b["x"], b["c"]),
                              to_device=lambda b: b, output_keys={"M": "M", "T": "T"}, batch_size=64)
    assert recovery["cells"] == config.truth_panel
    assert recovery["corr_M_truth"] == pytest.approx(ceiling.chosen, abs=1e-4)
    assert ceiling.by_strength[ceiling.chosen_strength] == ceiling.chosen
    assert set(ceiling.by_strength) == set(STRENGTHS)


def test_many_training_cell_lines_pin_M_far_better_than_a_few():
    for seed in (0, 1, 2):
        few = m_ceiling(SynthConfig(seed=seed, cells_train=4)).chosen
        many = m_ceiling(SynthConfig(seed=seed, cells_train=400)).chosen
        assert many > 0.75 and many > few + 0.1, (seed, few, many)


def test_the_ceiling_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="additive"):
        m_ceiling(SynthConfig(mechanism="additive"))
    with pytest.raises(ValueError, match="truth_panel"):
        m_ceiling(SynthConfig(truth_panel=2))
