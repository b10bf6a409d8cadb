"""What a person watching the run sees: a rich live view on a terminal, plain lines elsewhere.

Live view: a progress bar for the current epoch, a table of the latest metrics, the active
alarms. Off when stdout is not a TTY or when CI is set (logs stay readable), or by config.
Cells are `Text` objects, never markup strings: a line printed with markup off while the live
view is up re-renders the view under the same options, and markup strings would then show as
literal `[dim]step[/]`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text


def live_enabled(setting: str, is_tty: bool, environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if setting in ("on", "off"):
        return setting == "on"
    return is_tty and not environ.get("CI") and environ.get("TERM", "") != "dumb"


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2e}"
    return str(value)


class Display:
    def __init__(self, console: Console, live: bool):
        self.console = console
        self.live_on = live
        self.metrics: dict[str, str] = {}
        self.alarms: dict[str, str] = {}
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console)
        self.task = None
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False) if live else None
        if self.live is not None:
            self.live.start()

    def _render(self):
        table = Table(show_header=False, box=None, pad_edge=False)
        for key, value in self.metrics.items():
            table.add_row(Text(key, style="dim"), Text(value))
        parts = [self.progress, table]
        if self.alarms:
            alarm_table = Table(show_header=False, box=None)
            for message in self.alarms.values():
                alarm_table.add_row(Text("ALARM", style="bold yellow"), Text(message))
            parts.append(alarm_table)
        return Group(*parts)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def start_epoch(self, epoch: int, stage: str, steps: int) -> None:
        if self.live is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch} ({stage})", total=steps, info="")
        self._refresh()

    def advance(self, losses: Mapping[str, float] | None = None) -> None:
        if self.live is None or self.task is None:
            return
        info = " ".join(f"{k} {v:.4f}" for k, v in (losses or {}).items()) if losses else None
        self.progress.update(self.task, advance=1, **({"info": info} if info is not None else {}))

    def show(self, values: Mapping[str, Any]) -> None:
        self.metrics.update({k: fmt(v) for k, v in values.items()})
        self._refresh()

    def alarm(self, raised, cleared) -> None:
        for alarm in raised:
            self.alarms[alarm.key] = f"step {alarm.step}: {alarm.message}"
            if self.live is None:
                self.console.print(f"[bold yellow]alarm[/] step {alarm.step}: {escape(alarm.message)}")
        for alarm in cleared:
            self.alarms.pop(alarm.key, None)
            if self.live is None:
                self.console.print(f"[dim]cleared[/] {escape(alarm.kind)} {escape(alarm.subject)}")
        self._refresh()

    def line(self, text: str) -> None:
        """A line that stays in the scroll-back (epoch summaries, stage changes)."""
        self.console.print(Text(text))

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def epoch_lines(record: dict[str, Any]) -> list[str]:
    """The epoch summary: validation AUPR beside the ceiling, positive rate and accuracy; the probes."""
    val, ceiling = record["val"]["pooled"], record["selection"]["ceiling"]
    lines = [f"epoch {record['epoch']} ({record['stage']}) step {record['step']}: train loss "
             f"{fmt(record['train_loss'].get('total'))} | val AUPR {fmt(val['aupr'])} (Bayes {fmt(ceiling)}, "
             f"positive rate {fmt(val['positive_rate'])}) accuracy {fmt(val['accuracy'])} AUROC {fmt(val['auroc'])} "
             f"log-loss {fmt(val['log_loss'])} ECE {fmt(val['ece'])}" + (" *best*" if record["improved"] else "")]
    probes = record.get("probes") or {}
    if probes:
        lines.append(f"    I(z_I; c) {fmt((probes.get('mi_zI_c') or {}).get('nats'))} nats, corr(M, U_I) "
                     f"{fmt(probes.get('corr_M_UI'))}, corr(T, accessibility) {fmt(probes.get('corr_T_access'))}, "
                     "T per cell " + ", ".join(f"{k} {v:.3f}" for k, v in (probes.get("T_per_cell") or {}).items()))
    return lines
