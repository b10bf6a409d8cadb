"""Disentanglement and plausibility probes computed from one validation pass (no extra forward).

* I(z_I; c) ≈ H(cell) − CE(cell | z_I): a multinomial logistic regression predicts the cell line
  from z_I; both the prior's and the classifier's cross-entropies are measured on the held-out
  half, so the estimate is ≥ 0 only when z_I really carries cell-line information (the seed's
  failure: I(z_I; c) ≈ I(x; c) because nothing compressed z_I).
* corr(M(c), U_I): the seed's 调制正交性; M should scale affinity, not re-encode it.
* T(c) per cell line and corr(T, accessibility), pooled and within each cell line: open chromatin
  should give a low T (sharp).
* on the built-in benchmark, truth recovery: corr(T, T*) within each cell line and corr(M, M*) across
  cell lines, the truth brought to the model's gauge (see `truth_recovery`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mutual_information_probe(z: np.ndarray, cell: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Held-out estimate of I(z; cell) in nats, with the pieces it is made of."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    labels, cell = np.unique(cell, return_inverse=True)
    if len(labels) < 2:
        return {"nats": None, "reason": "fewer than two cell lines in the probe set"}
    counts = np.bincount(cell)
    if counts.min() < 4:
        return {"nats": None, "reason": "a cell line has fewer than 4 examples in the probe set"}
    z_fit, z_held, c_fit, c_held = train_test_split(z, cell, test_size=0.5, random_state=seed, stratify=cell)
    prior = np.bincount(c_fit, minlength=len(labels)) / len(c_fit)
    prior = np.clip(prior, 1e-12, None)
    entropy = float(-np.log(prior[c_held]).mean())
    scaler = StandardScaler().fit(z_fit)
    classifier = LogisticRegression(max_iter=300, C=1.0)
    classifier.fit(scaler.transform(z_fit), c_fit)
    probabilities = np.clip(classifier.predict_proba(scaler.transform(z_held)), 1e-12, None)
    column = {label: i for i, label in enumerate(classifier.classes_)}
    cross_entropy = float(-np.log([probabilities[i, column[c]] for i, c in enumerate(c_held)]).mean())
    return {
        "nats": max(0.0, entropy - cross_entropy),
        "entropy": entropy,
        "cross_entropy": cross_entropy,
        "examples": int(len(c_held)),
        "cell_lines": int(len(labels)),
    }


MIN_T_SPREAD = 0.01  # T's within-cell s.d./|mean| below this: too flat for its correlations to mean anything


def relative_spread(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2:
        return 0.0
    return float(values.std() / max(abs(values.mean()), 1e-12))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def per_cell_mean(values: np.ndarray, cell: np.ndarray, cell_names: list[str]) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64).ravel()
    return {
        (cell_names[int(i)] if 0 <= int(i) < len(cell_names) else f"cell{int(i)}"): float(values[cell == i].mean())
        for i in np.unique(cell)
    }


def run_probes(outputs: dict[str, np.ndarray], cell: np.ndarray, access: np.ndarray | None,
               cell_names: list[str], seed: int = 0, truth: dict[str, dict[str, float]] | None = None
               ) -> dict[str, Any]:
    """Every probe whose inputs the model exposes; a missing output is reported, not skipped silently."""
    result: dict[str, Any] = {"unavailable": {}}
    z = outputs.get("z_I")
    if z is not None:
        result["mi_zI_c"] = mutual_information_probe(z, cell, seed)
    else:
        result["unavailable"]["mi_zI_c"] = "the model exposes no z_I output"
    if outputs.get("M") is not None and outputs.get("U_I") is not None:
        result["corr_M_UI"] = pearson(outputs["M"], outputs["U_I"])
        result["M_per_cell"] = per_cell_mean(outputs["M"], cell, cell_names)
    else:
        result["unavailable"]["corr_M_UI"] = "the model exposes no " + " or ".join(
            k for k in ("M", "U_I") if outputs.get(k) is None) + " output"
    T = outputs.get("T")
    if T is not None:
        result["T_per_cell"] = per_cell_mean(T, cell, cell_names)
        result["corr_T_access"] = pearson(T, access) if access is not None else None
        if np.ptp(np.asarray(T)) == 0:
            result["unavailable"]["corr_T_access"] = "T is one shared value, not a function of c"
    else:
        result["unavailable"]["T_per_cell"] = "the model exposes no T output"
    if T is not None and access is not None:
        # Only cell lines where T varies at all: the correlation of a T that is constant up to its
        # initialisation noise (an untrained head, relative spread ~1e-3) is a coin toss, not a finding.
        within = [pearson(np.asarray(T)[cell == i], np.asarray(access)[cell == i]) for i in np.unique(cell)
                  if relative_spread(np.asarray(T)[cell == i]) >= MIN_T_SPREAD]
        within = [v for v in within if v is not None]
        result["corr_T_access_within"] = float(np.mean(within)) if within else None
        if not within:
            result["unavailable"]["corr_T_access_within"] = (
                f"T varies by less than {MIN_T_SPREAD:.0%} (s.d./mean) within every cell line")
    if truth:
        result.update(_against_truth(result, truth))
        recovery = truth_recovery(outputs, cell, access, cell_names, truth)
        if recovery is not None:
            result["truth_recovery"] = recovery
    return result


def truth_recovery(outputs: dict[str, np.ndarray], cell: np.ndarray, access: np.ndarray | None,
                   cell_names: list[str], truth: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """The learned M and T against the generator's M*, T*, per cell line (None when a piece is missing).

    corr(T, T*) and corr(T, accessibility) are taken within each cell line (pooled, they mix the cell
    lines' levels and say little); they are unchanged by any per-cell gauge k(c). Their means cover the
    cell lines where T varies by at least MIN_T_SPREAD (an untrained T is flat up to init noise). M is compared across cell
    lines with the truth brought to the model's gauge: (M*, B*, T*) -> k(c)·(M*, B*, T*) with k(c) the
    geometric mean of T / T* over the cell's rows, so a model that pins T(a_ref) = 1 is compared with
    M*(c) / T*(c, a_ref).
    """
    M, T = outputs.get("M"), outputs.get("T")
    if M is None or T is None or access is None or not len(cell):
        return None
    M, T = np.asarray(M, dtype=np.float64).ravel(), np.asarray(T, dtype=np.float64).ravel()
    access = np.asarray(access, dtype=np.float64).ravel()
    per_cell: dict[str, dict[str, Any]] = {}
    for index in np.unique(cell):
        name = cell_names[int(index)] if 0 <= int(index) < len(cell_names) else f"cell{int(index)}"
        hidden = truth.get(name, {})
        if not {"M", "T_at_half_access", "T_access_slope"} <= set(hidden):
            continue
        rows = cell == index
        t_star = hidden["T_at_half_access"] * np.exp(-hidden["T_access_slope"] * (access[rows] - 0.5))
        positive = (T[rows] > 0).all()
        gauge = float(np.exp(np.mean(np.log(T[rows]) - np.log(t_star)))) if positive else None
        per_cell[name] = {
            "examples": int(rows.sum()),
            "T_relative_spread": relative_spread(T[rows]),
            "corr_T_truth": pearson(T[rows], t_star),
            "corr_T_access": pearson(T[rows], access[rows]),
            "M": float(M[rows].mean()),
            "M_truth": hidden["M"],
            "gauge_k": gauge,
            "M_truth_in_model_gauge": None if gauge is None else gauge * hidden["M"],
        }
    if not per_cell:
        return None
    pairs = [(v["M"], v["M_truth_in_model_gauge"]) for v in per_cell.values() if v["M_truth_in_model_gauge"] is not None]
    if relative_spread(np.array([v["M_truth"] for v in per_cell.values()])) < 1e-6:
        pairs = []  # M* is the same in every cell line (the additive truth): nothing to recover
    varying = [v for v in per_cell.values() if v["T_relative_spread"] >= MIN_T_SPREAD]
    within_truth = [v["corr_T_truth"] for v in varying if v["corr_T_truth"] is not None]
    within_access = [v["corr_T_access"] for v in varying if v["corr_T_access"] is not None]
    return {
        "per_cell": per_cell,
        "corr_T_truth_within_mean": float(np.mean(within_truth)) if within_truth else None,
        "corr_T_truth_within_min": float(np.min(within_truth)) if within_truth else None,
        "corr_T_access_within_mean": float(np.mean(within_access)) if within_access else None,
        "corr_M_truth_across_cells": pearson([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) >= 3 else None,
        "cells": len(per_cell),
        "cells_with_varying_T": len(varying),
    }


def _against_truth(result: dict[str, Any], truth: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Learned per-cell M and T beside the generator's hidden M* and T* (the seed's 生物学合理性 check:
    does M(c) track TF concentration, does T(c) track the cell's sharpness). Correlations are
    scale-free, because M and U_I (and T) are only identified up to a common scale."""
    found = {}
    for learned, hidden in (("M_per_cell", "M"), ("T_per_cell", "T_at_half_access")):
        pairs = [(value, truth[cell][hidden]) for cell, value in (result.get(learned) or {}).items()
                 if hidden in truth.get(cell, {})]
        if pairs:
            found[f"{learned}_truth"] = {cell: truth[cell][hidden] for cell in result[learned] if cell in truth}
            found[f"corr_{learned}_truth"] = pearson([p[0] for p in pairs], [p[1] for p in pairs])
    return found
