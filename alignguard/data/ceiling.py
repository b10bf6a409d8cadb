"""How well M(descriptor) can be recovered at all from a benchmark's training cell lines: a model-free ceiling.

M is one number per cell line, a function of the descriptor only (CMDN's design), so whatever a
model learns about M it learns from `cells_train` points. This fits the **exact** truth of those
points — log M* in the gauge a CMDN model is pinned to (T carries no cell factor, T(a = 1/2) = 1,
so M* reads M*(c) / T*(c, 1/2)) — by ridge regression on the descriptor, and correlates the fit
with the truth over the unseen panel (`SynthConfig.truth_panel`), as `alignguard.train.panel` does
for a trained model's M. No examples, no noise, no model: if this stays below a target, no model
trained on those cell lines can be expected to reach it; reaching it says the data allows it.

Ridge strengths are a small grid; `chosen` is the one leave-one-out cross-validation over the
training cell lines picks (what a learner could pick without the panel), `by_strength` all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .synth import draw_cells

STRENGTHS = (0.1, 1.0, 10.0)


@dataclass(frozen=True)
class MCeiling:
    cells_train: int
    seed: int
    panel_cells: int
    chosen_strength: float
    chosen: float  # corr(fit, truth) over the panel at the cross-validated strength
    by_strength: dict[float, float]


def gauge_log_m(truth) -> np.ndarray:
    """log M*(c) in a CMDN model's gauge: log M* - t(c), t(c) = log T*(c, 1/2)."""
    return np.log(truth.m) - truth.log_t_cell


def training_fit(config: SynthConfig, strength: float):
    """Ridge regression of log M* (model's gauge) on the descriptors of the training cell lines, exact values."""
    from sklearn.linear_model import Ridge

    cells = draw_cells(config)
    train = np.arange(config.cells_train)
    return Ridge(alpha=strength).fit(cells.descriptors[train], gauge_log_m(cells.truth.subset(train)))


def m_ceiling(config: SynthConfig, strengths: tuple[float, ...] = STRENGTHS) -> MCeiling:
    """corr(M fitted to the exact training-cell truth, M* in the gauge) across the unseen panel."""
    from sklearn.linear_model import RidgeCV

    if config.mechanism != "multiplicative":
        raise ValueError("the additive mechanism has M* = 1 in every cell line: there is no M to recover")
    if config.truth_panel < 3:
        raise ValueError(f"truth_panel = {config.truth_panel}: a correlation needs at least 3 panel cell lines")
    cells = draw_cells(config)
    train = np.arange(config.cells_train)
    x, y = cells.descriptors[train], gauge_log_m(cells.truth.subset(train))
    panel_truth = np.exp(gauge_log_m(cells.panel))

    def score(strength: float) -> float:
        fitted = np.exp(training_fit(config, strength).predict(cells.panel_descriptors))
        return float(np.corrcoef(fitted, panel_truth)[0, 1])

    # efficient leave-one-out over the training cell lines: what a learner could choose without the panel
    chosen = float(RidgeCV(alphas=strengths).fit(x, y).alpha_)
    return MCeiling(config.cells_train, config.seed, config.truth_panel, chosen, score(chosen),
                    {s: score(s) for s in strengths})
