"""The mechanism dial does what docs/data.md says: the best additive predictor fits additive data
almost to the Bayes ceiling and falls clearly short on multiplicative data.

The oracle is f(U*) + g(cell line, accessibility bin), fitted by logistic regression on the true
energy: the best a legacy (U - R)/T model could do with perfect features. Slow (a few seconds).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder

from alignguard.data import groundtruth
from alignguard.data.config import SynthConfig
from alignguard.data.synth import _draw_context, _draw_sequences, build_world


def _excess_log_loss_of_best_additive(mechanism: str, cell_effect: float = 1.0) -> float:
    config = SynthConfig(mechanism=mechanism, seed=0, cell_effect=cell_effect)
    world = build_world(config)
    rng = np.random.default_rng(5)
    energy = world.energy(_draw_sequences(config, world.energy, 4000, rng))
    access = _draw_context(config, world.truth, 4000, rng)
    p = groundtruth.expit(groundtruth.binding_logits(energy, access, world.truth, config))
    y = (rng.random(p.shape) < p).ravel()
    n, k = p.shape
    u_bins = KBinsDiscretizer(20, encode="onehot", strategy="quantile")
    u_bins = u_bins.fit_transform(np.repeat(energy, k)[:, None])
    a_bins = KBinsDiscretizer(10, encode="ordinal", strategy="quantile").fit_transform(access.reshape(-1, 1))
    context = (np.tile(np.arange(k), n) * 10 + a_bins.ravel().astype(int))[:, None]
    features = np.hstack([u_bins.toarray(), OneHotEncoder().fit_transform(context).toarray()])
    oracle = LogisticRegression(C=10, max_iter=3000).fit(features, y).predict_proba(features)[:, 1]
    return log_loss(y, oracle) - log_loss(y, p.ravel())


@pytest.mark.slow
def test_additive_oracle_fits_additive_data_but_not_multiplicative_data():
    additive = _excess_log_loss_of_best_additive("additive")
    multiplicative = _excess_log_loss_of_best_additive("multiplicative")
    strong = _excess_log_loss_of_best_additive("multiplicative", cell_effect=2.0)
    assert additive < 0.008  # only the oracle's binning error
    assert multiplicative > additive + 0.004
    assert strong > multiplicative
