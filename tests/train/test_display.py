"""What the person watching a run sees: no markup leaks from the live view, full-width lines in
logs, a said-aloud TensorBoard absence."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from alignguard.train.display import Display
from alignguard.train.records import MetricsLog


def test_a_line_printed_while_the_live_view_is_up_leaks_no_markup():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    display = Display(console, live=True)
    display.start_epoch(0, "joint", 10)
    display.show({"step": 5, "loss bce": 0.5})
    display.alarm([type("A", (), {"key": "k", "step": 5, "message": "'kl' [vanished]", "kind": "vanished",
                                  "subject": "kl"})()], [])
    display.live.refresh()  # as the refresh thread does, 4 times a second
    display.line("epoch 0 (joint) step 10: train loss 1.0 [note]")  # a plain line, with brackets kept
    display.close()
    text = out.getvalue()
    assert "[dim]" not in text and "[/]" not in text and "[bold yellow]" not in text
    assert "epoch 0 (joint) step 10: train loss 1.0 [note]" in text and "'kl' [vanished]" in text


def test_logs_are_not_wrapped_at_80_columns_when_not_a_terminal():
    code = ("import sys; from alignguard.train.session import log_console; "
            "log_console().print('x' * 150 + ' end')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "x" * 150 + " end\n"


def test_tensorboard_missing_is_reported_not_silent(tmp_path, monkeypatch):
    import torch.utils

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    monkeypatch.delattr(torch.utils, "tensorboard", raising=False)
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb")
    assert not log.tensorboard_enabled and "ModuleNotFoundError" in log.tensorboard_problem
    log.close()


def test_a_one_epoch_aupr_plot_shows_every_series_and_its_values(tmp_path, monkeypatch):
    from alignguard.train import plots

    kept = {}
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: kept.setdefault("fig", fig))
    epoch = {"kind": "epoch", "epoch": 0, "stage": "joint", "stage_start": True,
             "val": {"pooled": {"aupr": 0.31, "bayes_aupr": 0.88, "positive_rate": 0.39}, "aupr_cell_mean": 0.30}}
    plots._aupr([epoch], tmp_path / "val_aupr.png")
    ax = kept["fig"].axes[0]
    visible = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
    assert {line.get_label() for line in visible} >= {"validation AUPR (pooled)", "Bayes ceiling (pooled)",
                                                     "positive rate = random AUPR"}
    assert ax.get_xlim() == (-0.5, 0.5) and list(ax.get_xticks()) == [0]
    assert {t.get_text() for t in ax.texts} >= {"0.310", "0.880", "0.390"}
