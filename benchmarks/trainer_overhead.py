"""Trainer overhead: steps/s of `alignguard train`'s loop (default monitoring) vs a plain PyTorch loop.

Same model file, same data (the built-in synthetic benchmark), same batch size and optimiser,
alternated round by round in one process so that machine load affects both alike. The trainer is
timed inside its real loop (Trainer.fit, through its after_step hook): data, forward, backward,
per-term gradient monitoring every N steps, logging and finiteness checks — not its setup nor the
validation pass after the epoch. Also prints the fraction of loop time spent waiting for batches.

    python benchmarks/trainer_overhead.py [--model models/cmdn.py] [--steps 100] [--rounds 11]

Each round times the steps after the first (setup excluded) in wall-clock and in process CPU time;
the ratios are medians over rounds of trainer/plain pairs run back to back, so a busy machine
(other processes) distorts both sides alike. Exits 0; the target is a ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignguard.modelfile.loader import load_model_file  # noqa: E402
from alignguard.spec.loader import load_spec  # noqa: E402
from alignguard.train.config import build_config  # noqa: E402
from alignguard.train.data import EpochBatches, make_loader  # noqa: E402
from alignguard.train.records import MetricsLog, read_records  # noqa: E402
from alignguard.train.sources import load_datasets  # noqa: E402
from alignguard.train.trainer import Trainer  # noqa: E402


class Window:
    """Wall and CPU time between the end of step `first` and the end of step `first + steps`."""

    def __init__(self, first: int, steps: int):
        self.first, self.last = first, first + steps
        self.marks: dict[int, tuple[float, float]] = {}

    def mark(self, done: int) -> None:  # `done` = optimiser steps completed so far
        if done in (self.first, self.last):
            self.marks[done] = (time.perf_counter(), time.process_time())

    def rates(self) -> tuple[float, float]:
        (wall0, cpu0), (wall1, cpu1) = self.marks[self.first], self.marks[self.last]
        steps = self.last - self.first
        return steps / (wall1 - wall0), steps / max(cpu1 - cpu0, 1e-9)


def trainer_round(spec, model_path: Path, datasets, steps: int, batch_size: int, threads: int, seed: int) -> dict:
    """The real training loop (Trainer.fit); the window covers `steps` steps including monitored ones."""
    overrides = {"epochs": 1, "batch_size": batch_size, "threads": threads, "seed": seed,
                 "curriculum": [{"name": "all", "train": [""]}],  # the plain loop trains everything too
                 "data.train_examples_per_epoch": (steps + 1) * batch_size, "data.eval_examples": 256,
                 "monitor.live": "off", "monitor.tensorboard": False, "monitor.probe_examples": 200}
    config = build_config(None, overrides)
    window = Window(1, steps)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        (run_dir / "checkpoints").mkdir()
        from rich.console import Console

        trainer = Trainer(spec=spec, model_file=load_model_file(model_path, spec.entry_points), config=config,
                          run_dir=run_dir, datasets=datasets, console=Console(quiet=True),
                          hooks={"after_step": lambda t: window.mark(t.progress["step"])})
        log = MetricsLog(run_dir / "metrics.jsonl", None)
        try:
            trainer.fit(log)
        finally:
            log.close()
            trainer.close()
        epoch = [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == "epoch"][0]
        monitored = sum(1 for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == "step"
                        and r.get("grad_share") and window.first <= r["step"] < window.last)
    wall, cpu = window.rates()
    return {"wall": wall, "cpu": cpu, "wait": epoch["data_wait_fraction"], "monitored": monitored}


def plain_round(spec, model_path: Path, datasets, steps: int, batch_size: int, threads: int, seed: int) -> dict:
    """What one writes by hand: DataLoader, forward, sum of the loss terms, backward, AdamW step."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model_file = load_model_file(model_path, spec.entry_points)
    model = model_file.build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    batches = EpochBatches(len(datasets.train), batch_size, epoch=0, seed=seed, limit=(steps + 1) * batch_size)
    loader = iter(make_loader(datasets.train, batches, workers=0, pin_memory=False))
    window = Window(1, steps)
    model.train()
    waited, started = 0.0, time.perf_counter()
    for step in range(len(batches)):
        before = time.perf_counter()
        batch = next(loader)
        waited += time.perf_counter() - before
        outputs = model(batch["x"], batch["c"])
        total = sum(model_file.loss_terms(model, batch, outputs, step).values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        window.mark(step + 1)
    wall, cpu = window.rates()
    return {"wall": wall, "cpu": cpu, "wait": waited / (time.perf_counter() - started), "monitored": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "cmdn.py")
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "cmdn.yaml")
    parser.add_argument("--steps", type=int, default=100,
                        help="Timed optimiser steps per round (a multiple of monitor.every_steps keeps the "
                        "monitoring share exact).")
    parser.add_argument("--rounds", type=int, default=11, help="Timed rounds of each (after one warm-up).")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    spec = load_spec(args.spec)
    datasets, _ = load_datasets(build_config(None, {}).data)
    every = build_config(None, {}).monitor.every_steps
    print(f"model {args.model.name}, batch {args.batch_size}, {args.steps} timed steps/round, {args.rounds} rounds, "
          f"{args.threads} threads, monitoring every {every} steps")
    results = {"trainer": [], "plain": []}
    for round_index in range(args.rounds + 1):
        order = [("trainer", trainer_round), ("plain", plain_round)]
        if round_index % 2:
            order.reverse()  # alternate which goes first
        for name, run in order:
            result = run(spec, args.model, datasets, args.steps, args.batch_size, args.threads, round_index)
            label = "warm-up" if round_index == 0 else f"round {round_index}"
            print(f"  {label:8} {name:7} {result['wall']:7.2f} steps/s wall, {result['cpu']:6.2f} steps/CPU-s, "
                  f"waiting for batches {100 * result['wait']:.1f}%"
                  + (f", {result['monitored']} monitored steps" if name == "trainer" else ""))
            if round_index > 0:
                results[name].append(result)
    pairs = list(zip(results["trainer"], results["plain"]))
    wall_ratios = [t["wall"] / p["wall"] for t, p in pairs]
    wall_ratio = statistics.median(wall_ratios)
    cpu_ratio = statistics.median(t["cpu"] / p["cpu"] for t, p in pairs)
    wait = float(np.mean([r["wait"] for r in results["trainer"]]))
    print(f"median steps/s: trainer {statistics.median(r['wall'] for r in results['trainer']):.2f}, plain loop "
          f"{statistics.median(r['wall'] for r in results['plain']):.2f}")
    print(f"trainer / plain, median of paired rounds: {wall_ratio:.3f} wall-clock, {cpu_ratio:.3f} CPU time "
          f"(target >= 0.95: {'met' if min(wall_ratio, cpu_ratio) >= 0.95 else 'NOT met'})")
    if len(wall_ratios) >= 4:  # the spread shows how far one round's ratio can be trusted on this machine
        low, _, high = statistics.quantiles(wall_ratios, n=4)
        print(f"paired wall-clock ratios: quartiles {low:.3f}-{high:.3f}, range {min(wall_ratios):.3f}-"
              f"{max(wall_ratios):.3f} over {len(wall_ratios)} rounds")
    print(f"trainer time waiting for batches: {100 * wait:.1f}% of the training loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
