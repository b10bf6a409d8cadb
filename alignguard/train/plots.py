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


def _epoch_axis(ax, epochs: list[int]) -> None:
    """Whole-number epoch ticks with half an epoch of margin, so one epoch sits mid-plot."""
    from matplotlib.ticker import MaxNLocator

    if 0 < len(set(epochs)) <= 20:
        ax.set_xticks(sorted(set(epochs)))  # MaxNLocator falls back to fractions when one integer is in range
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def _label_single(ax, x, values, color, fmt="{:.3f}") -> None:
    """With one epoch there is no line to read: write the value beside its marker."""
    if len(x) == 1 and values[0] is not None:
        ax.annotate(fmt.format(values[0]), (x[0], values[0]), xytext=(16, 0), textcoords="offset points",
                    va="center", fontsize=8, color=color)


def draw_report(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step" and r.get("grad_share")]
    written = [_aupr(epochs, folder / "val_aupr.png"), _shares(steps, folder / "gradient_shares.png"),
               _temperature(epochs, folder / "temperature_per_cell.png"),
               _information(epochs, folder / "mi_zI_c.png")]
    return [path for path in written if path is not None]


def _aupr(epochs, path):
    plt, fig, ax = _figure()
    x = [r["epoch"] for r in epochs]
    val = [r["val"]["pooled"] for r in epochs]
    # every series has a marker: at one epoch a line alone draws nothing
    pooled = [v["aupr"] for v in val]
    ax.plot(x, pooled, "o-", color="C0", ms=7, label="validation AUPR (pooled)", zorder=3)
    _label_single(ax, x, pooled, "C0")
    cell_mean = [r["val"].get("aupr_cell_mean") for r in epochs]
    if any(v is not None for v in cell_mean):
        ax.plot(x, cell_mean, "s--", color="C1", ms=5, label="validation AUPR (mean per cell line)")
    bayes = [v.get("bayes_aupr") for v in val]
    if any(b is not None for b in bayes):
        ax.plot(x, bayes, "k-", marker="_", ms=24, mew=2, lw=2, label="Bayes ceiling (pooled)")
        _label_single(ax, x, bayes, "black")
    rate = [v["positive_rate"] for v in val]
    ax.plot(x, rate, ":", color="grey", marker="_", ms=24, mew=1.5, label="positive rate = random AUPR")
    _label_single(ax, x, rate, "grey")
    for r in epochs:
        if r.get("stage_start"):
            if r is not epochs[0]:
                ax.axvline(r["epoch"] - 0.5, color="lightgrey", lw=1)
            ax.text(r["epoch"] - 0.45, 0.02, r["stage"], fontsize=7, color="grey")
    ax.set(xlabel="epoch", ylabel="AUPR", ylim=(0, 1.02), title="Validation AUPR on held-out cell lines")
    _epoch_axis(ax, x)
    ax.legend(fontsize=8, loc="upper left" if len(x) == 1 else "lower right")
    return _save(plt, fig, path)


def _shares(steps, path):
    plt, fig, ax = _figure()
    if not steps:
        ax.text(0.5, 0.5, "no gradient monitoring records", ha="center", transform=ax.transAxes)
    names = sorted({n for r in steps for n in r["grad_share"]})
    x = [r["step"] for r in steps]
    for name in names:  # markers when there are few records, so a short run still shows each one
        ax.plot(x, [r["grad_share"].get(name) for r in steps], marker="o" if len(x) <= 20 else None, ms=4,
                label=name)
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
    for index, (cell, points) in enumerate(sorted(series.items())):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=f"C{index % 10}", label=cell)
        _label_single(ax, [p[0] for p in points], [p[1] for p in points], f"C{index % 10}")
    ax.set(xlabel="epoch", ylabel="mean T(c)", title="Learned temperature T(c) per validation cell line")
    _epoch_axis(ax, [r["epoch"] for r in epochs])
    if series:
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _information(epochs, path):
    plt, fig, ax = _figure()
    points = [(r["epoch"], ((r.get("probes") or {}).get("mi_zI_c") or {}).get("nats")) for r in epochs]
    points = [p for p in points if p[1] is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label="I(z_I; c) (held-out probe)")
        _label_single(ax, [p[0] for p in points], [p[1] for p in points], "C0", "{:.4f} nats")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "I(z_I; c) unavailable (no z_I output)", ha="center", transform=ax.transAxes)
    _epoch_axis(ax, [r["epoch"] for r in epochs])
    ax.set(xlabel="epoch", ylabel="nats", title="I(z_I; c) = H(cell) − CE(cell | z_I)")
    ax.set_ylim(bottom=0)
    return _save(plt, fig, path)
