"""Validation and test metrics: per cell line and pooled, always beside the positive rate.

AUPR alone misleads (the seed's run reported AUPR 0.9177 on training data and accuracy 0.875 =
the all-negative classifier at a 12.5 % positive rate), so every table carries accuracy, the
positive rate (= a random ranker's AUPR), calibration (log-loss, ECE) and, when the data knows
the true probabilities, the Bayes-optimal AUPR of the very same examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

CLIP = 1e-7


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Binary ECE: Σ_bins (n_b / n) · |mean(y) − mean(p)| over equal-width probability bins."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / counts.sum())


def binary_metrics(y: np.ndarray, p: np.ndarray, p_true: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of predicted probabilities `p` for labels `y`; None where undefined (one class only)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    positives = int(y.sum())
    both = 0 < positives < len(y)
    result: dict[str, Any] = {
        "examples": int(len(y)),
        "positives": positives,
        "positive_rate": positives / len(y) if len(y) else None,
        "accuracy": float(((p >= 0.5) == (y >= 0.5)).mean()) if len(y) else None,
        "predicted_positive_rate": float((p >= 0.5).mean()) if len(y) else None,
        "mean_p": float(p.mean()) if len(y) else None,
        "aupr": float(average_precision_score(y, p)) if positives else None,
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
        "ece": expected_calibration_error(y, p) if len(y) else None,
        "bayes_aupr": None,
        "bayes_log_loss": None,
    }
    if p_true is not None and positives:
        q = np.clip(np.asarray(p_true, dtype=np.float64), CLIP, 1 - CLIP)
        result["bayes_aupr"] = float(average_precision_score(y, q))
        result["bayes_log_loss"] = float(log_loss(y, q, labels=[0, 1]))
    return result


def split_metrics(
    y: np.ndarray, p: np.ndarray, cell: np.ndarray, cell_names: list[str], p_true: np.ndarray | None = None
) -> dict[str, Any]:
    """{"pooled": metrics, "per_cell": {name: metrics}, "aupr_cell_mean": mean of per-cell AUPRs}."""
    per_cell = {}
    for index in np.unique(cell):
        rows = cell == index
        name = cell_names[int(index)] if 0 <= int(index) < len(cell_names) else f"cell{int(index)}"
        per_cell[name] = binary_metrics(y[rows], p[rows], None if p_true is None else p_true[rows])
    auprs = [m["aupr"] for m in per_cell.values() if m["aupr"] is not None]
    bayes = [m["bayes_aupr"] for m in per_cell.values() if m["bayes_aupr"] is not None]
    return {
        "pooled": binary_metrics(y, p, p_true),
        "per_cell": per_cell,
        "aupr_cell_mean": float(np.mean(auprs)) if auprs else None,
        "bayes_aupr_cell_mean": float(np.mean(bayes)) if bayes else None,
    }


def selection_value(metrics: dict[str, Any], metric: str) -> float | None:
    """The number early stopping watches: pooled AUPR or the mean per-cell AUPR."""
    return metrics["pooled"]["aupr"] if metric == "aupr_pooled" else metrics["aupr_cell_mean"]


def ceiling_of(metrics: dict[str, Any], metric: str) -> float | None:
    return metrics["pooled"]["bayes_aupr"] if metric == "aupr_pooled" else metrics["bayes_aupr_cell_mean"]
