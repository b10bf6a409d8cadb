"""Trainer overhead: steps/s of `alignguard train`'s loop (default monitoring) vs a plain PyTorch loop.

Same model file, same data (the built-in synthetic benchmark), same batch size and optimiser,
alternated round by round in one process so that machine load affects both alike. The trainer's
time is its training loop only (its epoch record's `seconds`: data, forward, backward, per-term
gradient monitoring every N steps, logging, finiteness checks), not the validation pass that
follows each epoch. Also prints the fraction of loop time spent waiting for batches.

    python benchmarks/trainer_overhead.py [--model models/cmdn.py] [--steps 60] [--rounds 3]

Exits 0; the target is a ratio >= 0.95.
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


def trainer_round(spec, model_path: Path, datasets, steps: int, batch_size: int, threads: int, seed: int) -> dict:
    overrides = {"epochs": 1, "batch_size": batch_size, "threads": threads, "seed": seed,
                 "curriculum": [{"name": "all", "train": [""]}],  # the plain loop trains everything too
                 "data.train_examples_per_epoch": steps * batch_size, "data.eval_examples": 256,
                 "monitor.live": "off", "monitor.tensorboard": False, "monitor.probe_examples": 200}
    config = build_config(None, overrides)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        (run_dir / "checkpoints").mkdir()
        from rich.console import Console

        trainer = Trainer(spec=spec, model_file=load_model_file(model_path, spec.entry_points), config=config,
                          run_dir=run_dir, datasets=datasets, console=Console(quiet=True))
        log = MetricsLog(run_dir / "metrics.jsonl", None)
        try:
            trainer.fit(log)
        finally:
            log.close()
            trainer.close()
        epoch = [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == "epoch"][0]
    return {"steps_per_second": epoch["steps"] / epoch["seconds"], "wait": epoch["data_wait_fraction"],
            "steps": epoch["steps"]}


def plain_round(spec, model_path: Path, datasets, steps: int, batch_size: int, threads: int, seed: int) -> dict:
    """What one writes by hand: DataLoader, forward, sum of the loss terms, backward, AdamW step."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model_file = load_model_file(model_path, spec.entry_points)
    model = model_file.build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    batches = EpochBatches(len(datasets.train), batch_size, epoch=0, seed=seed, limit=steps * batch_size)
    loader = iter(make_loader(datasets.train, batches, workers=0, pin_memory=False))
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
    seconds = time.perf_counter() - started
    return {"steps_per_second": len(batches) / seconds, "wait": waited / seconds, "steps": len(batches)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "cmdn.py")
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "cmdn.yaml")
    parser.add_argument("--steps", type=int, default=60, help="Optimiser steps per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds of each (after one warm-up).")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    spec = load_spec(args.spec)
    datasets, _ = load_datasets(build_config(None, {}).data)
    print(f"model {args.model.name}, batch {args.batch_size}, {args.steps} steps/round, {args.rounds} rounds, "
          f"{args.threads} threads, monitoring every {build_config(None, {}).monitor.every_steps} steps")
    results = {"trainer": [], "plain": []}
    for round_index in range(args.rounds + 1):
        order = [("trainer", trainer_round), ("plain", plain_round)]
        if round_index % 2:
            order.reverse()  # alternate which goes first
        for name, run in order:
            result = run(spec, args.model, datasets, args.steps, args.batch_size, args.threads, round_index)
            label = "warm-up" if round_index == 0 else f"round {round_index}"
            print(f"  {label:8} {name:7} {result['steps_per_second']:7.2f} steps/s  "
                  f"waiting for batches {100 * result['wait']:.1f}%")
            if round_index > 0:
                results[name].append(result)
    trainer = statistics.median(r["steps_per_second"] for r in results["trainer"])
    plain = statistics.median(r["steps_per_second"] for r in results["plain"])
    ratio = trainer / plain
    wait = float(np.mean([r["wait"] for r in results["trainer"]]))
    print(f"median steps/s: trainer {trainer:.2f}, plain loop {plain:.2f}; ratio {ratio:.3f} "
          f"(target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    print(f"trainer time waiting for batches: {100 * wait:.1f}% of the training loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
