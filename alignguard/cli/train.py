"""`alignguard train SPEC MODEL` and `alignguard evaluate RUN_DIR`.

Exit codes: 0 trained / evaluated; 1 the design check failed, nothing trained; 2 usage, spec,
model or data error; 3 the loss became NaN/inf (last good checkpoint intact); 4 a checkpoint is
corrupt, mismatched or could not be written; 130 Ctrl-C (a checkpoint was written first).
Imports nothing heavy at module level, so `alignguard --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from alignguard.cli.errors import reports_errors
from alignguard.cli.timeout import resolve_timeout, timeout_option
from alignguard.errors import ExitCode


def _default(key: str) -> str:
    """The training config's default for `key`, written as typer writes the defaults it knows."""
    from alignguard.train.config import OptimConfig, TrainConfig

    section, _, name = key.rpartition(".")
    field = (OptimConfig if section == "optim" else TrainConfig).model_fields[name]
    return f"[default: {field.default}, or --config's]"


@reports_errors
def train_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML); the model must pass its check first."),
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset directory. [default: the built-in benchmark]"),
    config: Optional[Path] = typer.Option(None, "--config", help="Training config YAML (see docs/training.md). [default: none: the built-in defaults]"),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory. [default: runs/<spec>-<time>]"),
    device: Optional[str] = typer.Option(None, "--device", help=f"auto | cpu | cuda {_default('device')}."),
    epochs: Optional[int] = typer.Option(None, "--epochs",
                                         help=f"Epoch budget shared by the curriculum {_default('epochs')}."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help=f"Training examples per step (per process under DDP) {_default('batch_size')}."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Peak learning rate of AdamW {_default('optim.lr')}."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help=f"Seeds initialisation, noise and the data order {_default('seed')}."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps. [default: no limit, or --config's]"),
    settings: list[str] = typer.Option([], "--set", help="Any config key, e.g. --set monitor.every_steps=20."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    skip_check: bool = typer.Option(
        False, "--skip-check-i-know",
        help="Train even though the design check fails (loud, and recorded in run.json)."),
    timeout: Optional[float] = timeout_option("the design check before training (not the training)"),
) -> None:
    """Check MODEL against SPEC, then train it (curriculum, monitoring, early stopping on validation AUPR)."""
    from alignguard.cli.heap import import_torch_and_freeze_heap
    from alignguard.isolation import run_isolated
    from alignguard.train.config import parse_assignment
    from alignguard.train.session import TrainRequest, train_run
    from alignguard.train.trainer import TrainingInterrupted

    overrides = dict(parse_assignment(text) for text in settings)
    for key, value in (("device", device), ("epochs", epochs), ("batch_size", batch_size), ("optim.lr", lr),
                       ("seed", seed), ("max_steps", max_steps)):
        if value is not None:
            overrides[key] = value
    request = TrainRequest(spec=spec, model=model, data=data, config_file=config, out=out, overrides=overrides,
                           resume=resume, skip_check=skip_check, gate_timeout=resolve_timeout(timeout))
    import_torch_and_freeze_heap()
    try:  # the gate and the training run the model file in a worker: its exits cannot pass for a verdict
        code = run_isolated(train_run, request, activity="training", passes=(TrainingInterrupted,))
    except TrainingInterrupted as stop:
        if stop.checkpoint is not None:
            run_dir = stop.checkpoint.parent.parent
            print(f"interrupted at step {stop.step}; checkpoint written to {stop.checkpoint}. Continue with: "
                  f"alignguard train {spec} {model} --out {run_dir} --resume", file=sys.stderr)
        else:
            print(f"interrupted at step {stop.step}; no checkpoint could be written (see above).", file=sys.stderr)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    raise typer.Exit(code)


@reports_errors
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `alignguard train`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on this dataset. [default: the run's own dataset]"),
    output_format: str = typer.Option(
        "text", "--format", "-f", metavar="text|json",
        help="Standard output: text (tables) or json (the document also written to RUN_DIR/evaluation.json; "
        "tables, notes and the model file's prints go to standard error)."),
) -> None:
    """Test-set metrics of the run's best checkpoint per held-out cell line, beside the Bayes ceiling."""
    from rich.console import Console

    from alignguard.cli.heap import import_torch_and_freeze_heap
    from alignguard.errors import UsageError
    from alignguard.isolation import run_isolated
    from alignguard.report.evaluation import FORMATS, render_json
    from alignguard.train.session import evaluate_run

    fmt = output_format.lower()
    if fmt not in FORMATS:
        raise UsageError(f"evaluate has no format '{output_format}'", fix=f"use one of {', '.join(FORMATS)}")
    document = fmt == "json"
    import_torch_and_freeze_heap()
    result = run_isolated(evaluate_run, run_dir, data, Console(stderr=True, soft_wrap=True) if document else None,
                          activity="the evaluation", stdout_to_stderr=document)
    if document:
        typer.echo(render_json(result), nl=False)
