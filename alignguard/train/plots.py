"""The report figures (matplotlib PNG, headless), drawn from metrics.jsonl alone so they can be
redrawn for any run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(7, 4.2), dpi=110)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_report(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step" and r.get("grad_share")]
    written = [_aupr(epochs, folder / "val_aupr.png"), _shares(steps, folder / "gradient_shares.png"),
               _temperature(epochs, folder / "temperature_per_cell.png"),
               _information(epochs, folder / "mi_zI_c.png"), _truth(epochs, folder / "truth_recovery.png")]
    return [path for path in written if path is not None]


def _aupr(epochs, path):
    plt, fig, ax = _figure()
    x = [r["epoch"] for r in epochs]
    val = [r["val"]["pooled"] for r in epochs]
    ax.plot(x, [v["aupr"] for v in val], "o-", label="validation AUPR (pooled)")
    cell_mean = [r["val"].get("aupr_cell_mean") for r in epochs]
    if any(v is not None for v in cell_mean):
        ax.plot(x, cell_mean, "s--", label="validation AUPR (mean per cell line)")
    bayes = [v.get("bayes_aupr") for v in val]
    if any(b is not None for b in bayes):
        ax.plot(x, bayes, "k-", lw=2, label="Bayes ceiling (pooled)")
    ax.plot(x, [v["positive_rate"] for v in val], ":", color="grey", label="positive rate = random AUPR")
    for r in epochs:
        if r.get("stage_start"):
            ax.axvline(r["epoch"] - 0.5, color="lightgrey", lw=1)
            ax.text(r["epoch"] - 0.45, 0.02, r["stage"], fontsize=7, color="grey")
    ax.set(xlabel="epoch", ylabel="AUPR", ylim=(0, 1.02), title="Validation AUPR on held-out cell lines")
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig, path)


def _shares(steps, path):
    plt, fig, ax = _figure()
    if not steps:
        ax.text(0.5, 0.5, "no gradient monitoring records", ha="center", transform=ax.transAxes)
    names = sorted({n for r in steps for n in r["grad_share"]})
    x = [r["step"] for r in steps]
    for name in names:
        ax.plot(x, [r["grad_share"].get(name) for r in steps], label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="step", ylabel="share g_i·g / |g|²", title="Per-term share of the total gradient")
    if names:
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _temperature(epochs, path):
    plt, fig, ax = _figure()
    series: dict[str, list[tuple[int, float]]] = {}
    for r in epochs:
        for cell, value in ((r.get("probes") or {}).get("T_per_cell") or {}).items():
            series.setdefault(cell, []).append((r["epoch"], value))
    if not series:
        ax.text(0.5, 0.5, "the model exposes no T(c)", ha="center", transform=ax.transAxes)
    for cell, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=cell)
    ax.set(xlabel="epoch", ylabel="mean T(c)", title="Learned temperature T(c) per validation cell line")
    if series:
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _information(epochs, path):
    plt, fig, ax = _figure()
    points = [(r["epoch"], ((r.get("probes") or {}).get("mi_zI_c") or {}).get("nats")) for r in epochs]
    points = [p for p in points if p[1] is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label="I(z_I; c) (held-out probe)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "I(z_I; c) unavailable (no z_I output)", ha="center", transform=ax.transAxes)
    ax.set(xlabel="epoch", ylabel="nats", title="I(z_I; c) = H(cell) − CE(cell | z_I)")
    ax.set_ylim(bottom=0)
    return _save(plt, fig, path)


def _truth(epochs, path):
    """Truth recovery per epoch (built-in benchmark only): corr(T, T*) and corr(T, a) within each validation
    cell line, corr(M, M*) across them. No figure when the data has no known truth."""
    recovery = [(r["epoch"], (r.get("probes") or {}).get("truth_recovery")) for r in epochs]
    recovery = [(epoch, value) for epoch, value in recovery if value]
    if not recovery:
        return None
    plt, fig, ax = _figure()
    cells = sorted({cell for _, value in recovery for cell in value["per_cell"]})
    for index, cell in enumerate(cells):
        points = [(e, v["per_cell"][cell]) for e, v in recovery if cell in v["per_cell"]]
        color = f"C{index % 10}"
        ax.plot([p[0] for p in points], [p[1]["corr_T_truth"] for p in points], "o-", color=color,
                label=f"{cell}: corr(T, T*)")
        ax.plot([p[0] for p in points], [p[1]["corr_T_access"] for p in points], "x:", color=color,
                label=f"{cell}: corr(T, accessibility)")
    ax.plot([e for e, _ in recovery], [v.get("corr_M_truth_across_cells") for _, v in recovery], "ks--", lw=2,
            label="corr(M, M*) across cell lines")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="epoch", ylabel="Pearson correlation", ylim=(-1.05, 1.05),
           title="Truth recovery on validation cell lines (T within each, M across them)")
    ax.legend(fontsize=6, ncol=2, loc="lower left")
    return _save(plt, fig, path)
