"""Reference metrics written into the manifest: the Bayes ceiling (from p_true) and the random floor.

The Bayes-optimal AUPR of a split is the average precision of y ranked by p_true = P(y=1 | x, c);
a random ranker's expected AUPR is the positive rate. `sequence_only_aupr` ranks by U*(x) alone: as
p_true increases in U* for every context, it is the ceiling of any model that ignores c.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from .store import SplitMetrics


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < len(y)


def reference_metrics(
    y: np.ndarray, p_true: np.ndarray | None = None, energy: np.ndarray | None = None
) -> SplitMetrics:
    """Positive rate always; Bayes AUPR / AUROC / log-loss when p_true is known and both classes occur."""
    y = np.asarray(y, dtype=np.int8)
    positives = int(y.sum())
    metrics = SplitMetrics(
        examples=len(y), positives=positives, positive_rate=positives / len(y) if len(y) else None
    )
    if p_true is None or not _has_both_classes(y):
        return metrics
    p = np.clip(np.asarray(p_true, dtype=np.float64), 1e-7, 1 - 1e-7)
    update = {
        "mean_p_true": float(p.mean()),
        "bayes_aupr": float(average_precision_score(y, p)),
        "bayes_auroc": float(roc_auc_score(y, p)),
        "bayes_log_loss": float(log_loss(y, p, labels=[0, 1])),
    }
    if energy is not None:
        update["sequence_only_aupr"] = float(average_precision_score(y, energy))
    return metrics.model_copy(update=update)


def split_metrics(
    y: np.ndarray, cell: np.ndarray, cell_names: list[str], p_true=None, energy=None
) -> tuple[SplitMetrics, dict[str, SplitMetrics]]:
    """Pooled metrics for the split and the same metrics per cell line (keyed by name)."""
    pooled = reference_metrics(y, p_true, energy)
    per_cell = {}
    for index in np.unique(cell):
        rows = cell == index
        per_cell[cell_names[int(index)]] = reference_metrics(
            y[rows],
            None if p_true is None else p_true[rows],
            None if energy is None else energy[rows],
        )
    aupr = [m.bayes_aupr for m in per_cell.values() if m.bayes_aupr is not None]
    if aupr:
        pooled = pooled.model_copy(update={"per_cell_bayes_aupr_mean": float(np.mean(aupr))})
    return pooled, per_cell
