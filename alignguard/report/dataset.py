"""A dataset's summary for `alignguard data inspect|synth|convert`: a JSON document, or the text
tables (sizes, positive rates, Bayes AUPR per split and cell line). Renders a loaded manifest only;
reading and verifying the dataset is alignguard.data's job."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

FORMATS = ("text", "json")


def summary_document(manifest, path, checksums: str, **extra: Any) -> dict[str, Any]:
    """Everything the tables show, as data. `checksums`: "verified" or "sizes only"."""
    cells_truth = (manifest.truth or {}).get("cells", {})
    return {
        "path": str(path),
        "kind": manifest.kind,
        "format_version": manifest.version,
        "checksums": checksums,
        "window": manifest.window,
        "descriptor_dim": manifest.descriptor_dim,
        "loci": manifest.loci.total,
        "cell_lines": list(manifest.cell_lines),
        "files": len(manifest.files),
        "bytes": sum(entry.bytes for entry in manifest.files.values()),
        "truth": ({"formula": manifest.truth.get("formula"),
                   "cells": {cell: {"M": t.get("M"), "T_at_half_access": t.get("T_at_half_access")}
                             for cell, t in cells_truth.items()}} if manifest.truth else None),
        "splits": {
            name: {
                "cells": [manifest.cell_lines[i] for i in split.cells],
                "loci": split.loci,
                "metrics": split.metrics.model_dump(),
                "per_cell": {cell: m.model_dump() for cell, m in split.per_cell.items()},
            }
            for name, split in manifest.splits.items()
        },
        **extra,
    }


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1) + "\n"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_renderables(manifest, *, per_cell: bool) -> list:
    """The header line, the split table and (with `per_cell`) the per-cell-line table, for a rich Console."""
    disk = sum(entry.bytes for entry in manifest.files.values())
    out: list = [Text(
        f"{manifest.kind} dataset, format v{manifest.version}: {manifest.loci.total} loci x L={manifest.window}, "
        f"{len(manifest.cell_lines)} cell lines, c has D+1={manifest.descriptor_dim + 1} columns, "
        f"{len(manifest.files)} files, {disk / 1e6:.1f} MB"
    )]
    if manifest.truth:
        out.append(Text(f"ground truth: {manifest.truth['formula']}", style="dim"))
    table = Table(
        title="Splits",
        caption="rate = positive rate = a random ranker's AUPR; Bayes AUPR and log-loss rank by p_true "
        "(pooled over cell lines); cell AUPR = mean per-cell Bayes AUPR; seq AUPR = ranking by U*(x) alone",
    )
    for column in ("split", "cells", "loci", "examples", "pos", "rate", "Bayes AUPR", "cell AUPR",
                   "log-loss", "seq AUPR"):  # fmt: skip
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, split in manifest.splits.items():
        m = split.metrics
        table.add_row(
            name, str(len(split.cells)), str(split.loci), str(m.examples), str(m.positives),
            _number(m.positive_rate), _number(m.bayes_aupr), _number(m.per_cell_bayes_aupr_mean),
            _number(m.bayes_log_loss), _number(m.sequence_only_aupr),
        )  # fmt: skip
    out.append(table)
    if not per_cell:
        return out
    cells_truth = (manifest.truth or {}).get("cells", {})
    table = Table(title="Per cell line")
    for column in ("split", "cell line", "examples", "rate", "Bayes AUPR", "log-loss", "M*", "T*(a=.5)"):
        table.add_column(column, justify="left" if column in ("split", "cell line") else "right")
    for name, split in manifest.splits.items():
        for cell, m in split.per_cell.items():
            truth = cells_truth.get(cell, {})
            table.add_row(
                name, cell, str(m.examples), _number(m.positive_rate), _number(m.bayes_aupr),
                _number(m.bayes_log_loss), _number(truth.get("M"), 2), _number(truth.get("T_at_half_access"), 2),
            )  # fmt: skip
    out.append(table)
    return out
