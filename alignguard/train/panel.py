"""Truth recovery over a panel of unseen cell lines: M against M* across many new cell lines.

M is one number per cell line, so corr(M, M*) over the test split's cell lines (3 by default)
rests on 3 points: one swapped pair moves it from 0.99 to 0.76, and a model whose M tracks M*
poorly on new cell lines passes by luck as easily (for 3 unrelated points, P(r >= 0.8) ~ 0.2).
The built-in benchmark therefore records a panel of further unseen cell lines (descriptors and
their hidden M*, T*(c, 1/2); no examples, `SynthConfig.truth_panel`). This runs the model on each
panel descriptor at a grid of accessibilities (x taken from real examples of the split), brings M*
to the model's gauge exactly as `probes.truth_recovery` does (k(c), the geometric mean of T/T*
over the cell's rows) and correlates M with it across the panel, with a Fisher-z 95 % interval.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from alignguard.train.probes import pearson

ACCESS_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)


def fisher_interval(r: float, n: int, z: float = 1.959964) -> list[float] | None:
    """95 % interval of a Pearson correlation over n points (None for n <= 3 or |r| = 1)."""
    if n <= 3 or abs(r) >= 1.0:
        return None
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return [math.tanh(centre - half), math.tanh(centre + half)]


def panel_inputs(panel: dict[str, Any], source: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """One row per (panel cell, grid accessibility): x and the other inputs from the split's first
    examples, c = (panel descriptor, accessibility). None when c is not (descriptor, accessibility)."""
    descriptors = np.asarray(panel["descriptors"], dtype=np.float32)
    source = {key: np.asarray(value) for key, value in source.items()}
    context = source.get("c")
    if context is None or context.ndim != 2 or context.shape[1] != descriptors.shape[1] + 1:
        return None
    grid = np.asarray(ACCESS_GRID, dtype=np.float32)
    rows = len(descriptors) * len(grid)
    take = np.arange(rows) % len(context)
    batch = {key: value[take] for key, value in source.items()}
    batch["c"] = np.concatenate([np.repeat(descriptors, len(grid), axis=0),
                                 np.tile(grid, len(descriptors))[:, None]], axis=1)
    return batch


def panel_recovery(model, panel: dict[str, Any] | None, split, *, forward: Callable, to_device: Callable,
                   output_keys: dict[str, str], batch_size: int) -> dict[str, Any] | None:
    """corr(M, M* in the model's gauge) across the panel's unseen cell lines (None when the data has no
    panel or the model exposes no per-row M and T)."""
    import torch

    if not panel or len(panel.get("descriptors", ())) < 3 or not len(split):
        return None
    source = split.batch(np.arange(min(len(split), batch_size)))
    batch = panel_inputs(panel, source)
    if batch is None:
        return None
    found: dict[str, list[np.ndarray]] = {"M": [], "T": []}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(batch["c"]), batch_size):
                chunk = {k: torch.from_numpy(np.ascontiguousarray(v[start:start + batch_size])) for k, v in batch.items()}
                outputs = forward(to_device(chunk))
                for name in found:
                    value = outputs.get(output_keys.get(name, name))
                    if not isinstance(value, torch.Tensor) or value.numel() != len(chunk["c"]):
                        return None  # no per-row M or T: nothing to compare
                    found[name].append(value.detach().float().reshape(-1).cpu().numpy())
    finally:
        model.train(was_training)
    M, T = (np.concatenate(found[n]).astype(np.float64).reshape(-1, len(ACCESS_GRID)) for n in ("M", "T"))
    if (T <= 0).any():
        return None
    t_star = (np.asarray(panel["T_at_half_access"], dtype=np.float64)[:, None]
              * np.exp(-float(panel["T_access_slope"]) * (np.asarray(ACCESS_GRID) - 0.5))[None, :])
    gauge = np.exp(np.mean(np.log(T) - np.log(t_star), axis=1))
    learned, truth = M.mean(axis=1), gauge * np.asarray(panel["M"], dtype=np.float64)
    r = pearson(learned, truth)
    return {"cells": len(learned), "corr_M_truth": r,
            "corr_M_truth_ci95": None if r is None else fisher_interval(r, len(learned)),
            "access_grid": list(ACCESS_GRID)}
