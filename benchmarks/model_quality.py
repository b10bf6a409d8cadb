"""Model quality on the built-in benchmark: CMDN against the legacy additive model, on held-out cell lines.

For each ground-truth mechanism (multiplicative: the CMDN design; additive: the legacy model's
assumption) and each seed, the script generates the synthetic benchmark (data seed = seed), trains
`models/cmdn.py` and `models/legacy_energy.py` with the trainer's default config through its
Python API (`alignguard.train.session.train_run`, exactly what `alignguard train` runs,
the design check included; the legacy model fails it and is trained with the recorded override
`--skip-check-i-know`), and reads the test metrics of the best checkpoint (the test split holds
cell lines and loci never seen in training). It prints, as mean ± standard deviation over seeds:
mean per-cell AUPR, pooled AUPR, log-loss and ECE, beside the Bayes ceiling (the AUPR / log-loss
of the true probabilities on the same examples) and the positive rate (a random ranker's AUPR).

    python benchmarks/model_quality.py [--seeds 0 1 2] [--mechanisms multiplicative additive] [--models CMDN legacy]
                                       [--epochs N] [--examples-per-epoch N] [--quick]
                                       [--json results.json] [--keep DIR]

The default (3 seeds x 2 mechanisms x 2 models, 1050 steps each) took 11 min on 2 CPU cores,
about a minute per seed and mechanism when the cores were idle, several times more when busy.
--quick: one seed, 3 epochs (one per CMDN stage) of 6,000 examples (a
smoke run: the numbers mean little).
Exits 0; 1 (with the reason) when a run fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"CMDN": ROOT / "models" / "cmdn.py", "legacy": ROOT / "models" / "legacy_energy.py"}
SPEC = ROOT / "specs" / "cmdn.yaml"

# (label, where in the test metrics, where its Bayes reference is)
COLUMNS = (
    ("per-cell AUPR", ("aupr_cell_mean",), ("bayes_aupr_cell_mean",)),
    ("pooled AUPR", ("pooled", "aupr"), ("pooled", "bayes_aupr")),
    ("log-loss", ("pooled", "log_loss"), ("pooled", "bayes_log_loss")),
    ("ECE", ("pooled", "ece"), None),
)


def training_overrides(seed: int, mechanism: str, epochs: int | None, examples: int | None,
                       threads: int | None = None) -> dict:
    """What both models share (dotted keys of `alignguard train --set`): the trainer's defaults, with
    the seed applied to the data and the training, the mechanism, and no live display or TensorBoard."""
    overrides = {"seed": seed, "data.synth.seed": seed, "data.synth.mechanism": mechanism,
                 "monitor.live": "off", "monitor.tensorboard": False}
    if epochs is not None:
        overrides["epochs"] = epochs
    if threads is not None:
        overrides["threads"] = threads
    if examples is not None:
        overrides.update({"data.train_examples_per_epoch": examples, "data.eval_examples": 3000})
    return overrides


def train_and_test(model: Path, run_dir: Path, overrides: dict) -> tuple[dict, dict]:
    """One `alignguard train` run; returns the test metrics of its best checkpoint and the run facts."""
    from rich.console import Console

    from alignguard.train.session import TrainRequest, train_run

    log = io.StringIO()
    request = TrainRequest(spec=SPEC, model=model, out=run_dir, overrides=overrides, skip_check=True)
    start = time.perf_counter()
    from alignguard.errors import AlignguardError

    try:
        code = train_run(request, Console(file=log, width=120, force_terminal=False))
    except AlignguardError as error:
        raise SystemExit(f"training {model.name} failed: {error}") from None
    elapsed = time.perf_counter() - start
    (run_dir / "console.log").write_text(log.getvalue())
    summary_path = run_dir / "summary.json"
    if code != 0 or not summary_path.is_file():
        raise SystemExit(f"training {model.name} exited {code}; console output in {run_dir / 'console.log'}")
    summary = json.loads(summary_path.read_text())
    run = json.loads((run_dir / "run.json").read_text())
    if not summary.get("test"):
        raise SystemExit(f"{run_dir}: the run has no test metrics (no test split or no best checkpoint)")
    recovery = (summary["test"].get("probes") or {}).get("truth_recovery") or {}
    alarms = sorted({r["kind"] for r in read_records(run_dir / "metrics.jsonl") if r.get("kind") in DESIGN_ALARMS})
    facts = {"seconds": elapsed, "steps": summary["steps"], "best_epoch": summary["best_epoch"],
             "gate_passed": bool(run["gate"]["passed"]), "design_alarms": alarms,
             "truth": {key: recovery.get(key) for key in ("corr_T_truth_within_mean", "corr_T_truth_within_min",
                                                           "corr_T_access_within_mean", "corr_M_truth_across_cells")}}
    facts["truth"]["corr_M_truth_unseen_panel"] = (recovery.get("unseen_panel") or {}).get("corr_M_truth")
    return summary["test"]["metrics"], facts


def read_records(path: Path) -> list[dict]:
    from alignguard.train.records import read_records as read

    return read(path)


# Epoch alarms about the design's meaning (the others are about optimisation: plateau, constant ...).
DESIGN_ALARMS = ("implausible", "entangled", "leak")


def truth_line(name: str, facts: list[dict]) -> str:
    """Held-out truth recovery over seeds: corr(T, T*) within cell lines, corr(M, M*) across them."""
    def values(key):
        return [f["truth"].get(key) for f in facts]
    return (f"{name:12} corr(T, T*) within cells {mean_sd(values('corr_T_truth_within_mean'))} (worst cell "
            f"{mean_sd(values('corr_T_truth_within_min'))}), corr(T, accessibility) within cells "
            f"{mean_sd(values('corr_T_access_within_mean'))}, corr(M, M*) across cells "
            f"{mean_sd(values('corr_M_truth_across_cells'))} (per seed {per_seed(values('corr_M_truth_across_cells'))}), "
            f"across the panel of further unseen cell lines (train/panel.py) "
            f"{mean_sd(values('corr_M_truth_unseen_panel'))} (per seed {per_seed(values('corr_M_truth_unseen_panel'))}); "
            "design alarms: "
            + (", ".join(sorted({a for f in facts for a in f['design_alarms']})) or "none"))


def ceiling_line(seeds: list[int]) -> str:
    """The panel figure's model-free reference per seed (alignguard/data/ceiling.py; the default benchmark)."""
    from alignguard.data.ceiling import m_ceiling
    from alignguard.data.config import SynthConfig

    values = [m_ceiling(SynthConfig(seed=seed)).chosen for seed in seeds]
    return (f"{'ceiling':12} corr(M, M*) across the panel of a ridge fit to the exact M* of the training cell lines "
            f"(benchmarks/m_ceiling.py): per seed {per_seed(values)}")


def per_seed(values: list) -> str:
    return " / ".join("n/a" if v is None else f"{v:.3f}" for v in values)


def pick(metrics: dict, path: tuple[str, ...] | None):
    if path is None:
        return None
    value = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def print_table(mechanism: str, results: dict[str, list[dict]]) -> None:
    seeds = len(next(iter(results.values())))
    print(f"\n{mechanism} ground truth, test split (held-out cell lines), mean ± sd over {seeds} seed(s)")
    header = f"{'':12}" + "".join(f"{label:>17}" for label, _, _ in COLUMNS) + f"{'positive rate':>17}"
    print(header)
    for name, runs in results.items():
        print(f"{name:12}" + "".join(f"{mean_sd([pick(r, path) for r in runs]):>17}" for _, path, _ in COLUMNS)
              + f"{mean_sd([pick(r, ('pooled', 'positive_rate')) for r in runs]):>17}")
    any_runs = next(iter(results.values()))
    print(f"{'Bayes':12}" + "".join(f"{mean_sd([pick(r, bayes) for r in any_runs]) if bayes else '—':>17}"
                                   for _, _, bayes in COLUMNS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mechanisms", nargs="+", default=["multiplicative", "additive"],
                        choices=["multiplicative", "additive"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="Models to train (default: both).")
    parser.add_argument("--epochs", type=int, help="Epoch budget (default: the trainer's, 6).")
    parser.add_argument("--examples-per-epoch", type=int,
                        help="Training examples drawn per epoch (default: the whole training split).")
    parser.add_argument("--quick", action="store_true", help="One seed, 3 epochs of 6,000 examples.")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: PyTorch's).")
    parser.add_argument("--json", type=Path, help="Also write every run's metrics here.")
    parser.add_argument("--keep", type=Path, help="Keep the run directories here (default: a temp folder).")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.examples_per_epoch = args.seeds[:1], 3, 6_000

    import torch

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"config: the trainer's defaults (docs/training.md) with seeds {args.seeds}"
          + (f", {args.epochs} epochs" if args.epochs else "")
          + (f" of {args.examples_per_epoch} examples" if args.examples_per_epoch else "")
          + "; the model files' own curricula and losses; best checkpoint by validation pooled AUPR")
    started = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory(prefix="alignguard-quality-") as tmp:
        base = args.keep or Path(tmp)
        for mechanism in args.mechanisms:
            results: dict[str, list[dict]] = {name: [] for name in args.models}
            run_facts: dict[str, list[dict]] = {name: [] for name in args.models}
            for seed in args.seeds:
                overrides = training_overrides(seed, mechanism, args.epochs, args.examples_per_epoch, args.threads)
                for name in args.models:
                    model = MODELS[name]
                    run_dir = base / f"{mechanism}-seed{seed}-{name}"
                    metrics, facts = train_and_test(model, run_dir, overrides)
                    results[name].append(metrics)
                    run_facts[name].append(facts)
                    records.append({"mechanism": mechanism, "seed": seed, "model": name, **facts, "metrics": metrics})
                    gate = "passed" if facts["gate_passed"] else "FAILED"
                    print(f"  {mechanism} seed {seed} {name:7} design check {gate}, "
                          f"{facts['steps']:5d} steps, best epoch "
                          f"{facts['best_epoch']}, {facts['seconds']:.0f} s: test pooled AUPR "
                          f"{metrics['pooled']['aupr']:.3f} (Bayes {metrics['pooled']['bayes_aupr']:.3f})", flush=True)
            print_table(mechanism, results)
            print("truth recovery on the test cell lines (the truth brought to the model's gauge, docs/training.md):")
            for name, facts_of_model in run_facts.items():
                print(truth_line(name, facts_of_model))
            if mechanism == "multiplicative":
                print(ceiling_line(args.seeds))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; Bayes: the true probabilities on the same test examples "
          "(ECE of the truth is 0 in expectation); positive rate = a random ranker's AUPR")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
