"""One pass of a model over a split in eval mode: predictions, metrics, probes, tables.

Used every epoch on the validation split (held-out cell lines), at the end of training and by
`alignguard evaluate` on the test split. Under DDP each rank predicts every world-th example and
the arrays are gathered, so metrics are computed on the whole split exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from rich import box
from rich.table import Table

from alignguard.train.data import EpochBatches, Split, make_loader
from alignguard.train.distributed import DistInfo, gather_objects
from alignguard.train.metrics import split_metrics
from alignguard.train.probes import run_probes

PROBE_OUTPUTS = ("z_I", "M", "U_I", "T")


@dataclass
class Predictions:
    y: np.ndarray
    p: np.ndarray
    cell: np.ndarray
    p_true: np.ndarray | None
    outputs: dict[str, np.ndarray]  # probe outputs (z_I, M, U_I, T), rows aligned with probe_cell
    probe_cell: np.ndarray | None = None
    probe_access: np.ndarray | None = None
    interrupted: bool = False


def predict(model, split: Split, *, forward: Callable, to_device: Callable, batch_size: int, dist: DistInfo,
            output_keys: dict[str, str], probe_rows: int, workers: int = 0, pin_memory: bool = False,
            should_stop: Callable[[], bool] = lambda: False) -> Predictions:
    """Predicted probabilities for every example of `split` (every rank gets the gathered arrays)."""
    import torch

    batches = EpochBatches(len(split), batch_size, rank=dist.rank, world=dist.world, shuffle=False,
                           drop_last=False)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("y", "p", "cell", "p_true", "probe_cell", "probe_access", *PROBE_OUTPUTS)}
    probe_rows = probe_rows // dist.world
    was_training = model.training
    model.eval()
    kept, interrupted = 0, False
    try:
        with torch.no_grad():
            for batch in make_loader(split, batches, workers=workers, pin_memory=pin_memory):
                if should_stop():
                    interrupted = True
                    break
                device_batch = to_device(batch)
                outputs = forward(device_batch)
                logit = outputs[output_keys["logit"]].float()
                parts["p"].append(torch.sigmoid(logit).reshape(-1).cpu().numpy())
                parts["y"].append(batch["y"].numpy().reshape(-1))
                parts["cell"].append(batch["cell"].numpy().reshape(-1))
                if "p_true" in batch:
                    parts["p_true"].append(batch["p_true"].numpy().reshape(-1))
                if kept < probe_rows:
                    take = min(probe_rows - kept, len(logit))
                    for name in PROBE_OUTPUTS:
                        value = outputs.get(output_keys.get(name, name))
                        if isinstance(value, torch.Tensor):
                            rows = _per_row(value.detach().float().cpu().numpy(), len(logit))
                            if rows is not None:
                                parts[name].append(rows[:take])
                    parts["probe_cell"].append(batch["cell"].numpy().reshape(-1)[:take])
                    parts["probe_access"].append(batch["c"][:take, -1].numpy())
                    kept += take
    finally:
        model.train(was_training)
    local = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    merged = _merge(gather_objects(dist, local))
    probe = {name: merged[name] for name in PROBE_OUTPUTS if merged.get(name) is not None}
    return Predictions(y=merged["y"], p=merged["p"], cell=merged["cell"], p_true=merged.get("p_true"),
                       outputs=probe, probe_cell=merged.get("probe_cell"),
                       probe_access=merged.get("probe_access"), interrupted=interrupted)


def _per_row(value: np.ndarray, rows: int) -> np.ndarray | None:
    """One row per example: (B, ...) as is; a single shared value (e.g. one global T) repeated."""
    if value.ndim and value.shape[0] == rows:
        return value
    if value.size == 1:
        return np.full(rows, float(value.reshape(-1)[0]), dtype=np.float32)
    return None  # some other shape: not a per-example quantity, so no probe uses it


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate every rank's arrays (a key is None when no rank produced it)."""
    merged = {}
    for key in parts[0]:
        values = [p[key] for p in parts if p.get(key) is not None]
        merged[key] = np.concatenate(values) if values else None
    return merged


def assess(predictions: Predictions, cell_names: list[str], probes: bool, seed: int,
           truth: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Metrics (per cell line and pooled) and, optionally, the probes."""
    metrics = split_metrics(predictions.y, predictions.p, predictions.cell, cell_names, predictions.p_true)
    result: dict[str, Any] = {"metrics": metrics}
    if probes:
        cell = predictions.probe_cell if predictions.probe_cell is not None else np.zeros(0, dtype=np.int64)
        result["probes"] = run_probes(predictions.outputs, cell, predictions.probe_access, cell_names, seed=seed,
                                      truth=truth)
    return result


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """Per cell line and pooled: AUPR beside the Bayes ceiling, the positive rate and accuracy (DESIGN §2).

    Compact (about 70 columns) so that it survives an 80-column CI log without truncation.
    """
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in ("cell line", "n", "AUPR", "Bayes", "pos", "acc", "pred+", "AUROC", "logloss", "ECE"):
        table.add_column(column, justify="left" if column == "cell line" else "right", no_wrap=True)
    rows = list(metrics["per_cell"].items()) + [("pooled", metrics["pooled"])]
    for name, m in rows:
        table.add_row(name, str(m["examples"]), *(_3(m[k]) for k in (
            "aupr", "bayes_aupr", "positive_rate", "accuracy", "predicted_positive_rate", "auroc", "log_loss", "ece")),
            style="bold" if name == "pooled" else None)
    caption = ("Bayes: the Bayes-optimal AUPR of the same examples (the ceiling); pos: positive rate = a "
               "random ranker's AUPR; acc: accuracy at 0.5 (all-negative = 1 - pos); pred+: share "
               "predicted positive")
    if metrics.get("aupr_cell_mean") is not None:
        caption = (f"mean per-cell AUPR {_3(metrics['aupr_cell_mean'])} (Bayes "
                   f"{_3(metrics.get('bayes_aupr_cell_mean'))}). " + caption)
    table.caption, table.caption_justify = caption, "left"
    return table


def _3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def truth_table(recovery: dict[str, Any], title: str) -> Table:
    """Per cell line: the learned T against T* and accessibility (within the cell), M against M* in the
    model's gauge (across cells, in the caption)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in ("cell line", "n", "corr(T,T*)", "corr(T,a)", "M", "M* gauged"):
        table.add_column(column, justify="left" if column == "cell line" else "right", no_wrap=True)
    for name, row in recovery["per_cell"].items():
        table.add_row(name, str(row["examples"]), _3(row["corr_T_truth"]), _3(row["corr_T_access"]), _3(row["M"]),
                      _3(row["M_truth_in_model_gauge"]))
    panel = recovery.get("unseen_panel") or {}
    across_panel = ""
    if panel.get("corr_M_truth") is not None:
        interval = panel.get("corr_M_truth_ci95")
        across_panel = (f"; across a panel of {panel['cells']} further unseen cell lines "
                        f"{_3(panel['corr_M_truth'])}" + (f" (95 % CI {_3(interval[0])}–{_3(interval[1])})"
                                                          if interval else ""))
    table.caption = (f"within each cell line; corr(M, M*) across the {recovery['cells']} cell lines "
                     f"{_3(recovery.get('corr_M_truth_across_cells'))}{across_panel} (M* brought to the "
                     "model's gauge: k(c)·M*, k(c) the geometric mean of T/T* in the cell line)")
    table.caption_justify = "left"
    return table
