"""The `train` and `evaluate` use cases: gate, run directory, data, trainer, report.

`train_run` returns an exit code (0 trained, 1 refused by the gate) or raises an AlignguardError
(2 usage/data, 3 non-finite loss, 4 checkpoint) or TrainingInterrupted (130).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from alignguard.errors import CheckpointError, NonFiniteLossError, UsageError
from alignguard.train import rundir
from alignguard.train.config import RESUMABLE_CHANGES, TrainConfig, build_config, config_differences, \
    curriculum_from_model_file, validate_config
from alignguard.train.distributed import DistInfo, broadcast_object, from_environment, init_process_group, shutdown


@dataclass
class TrainRequest:
    spec: Path
    model: Path
    data: Path | None = None
    config_file: Path | None = None
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    skip_check: bool = False
    gate_timeout: float | None = None  # seconds the model file's import and the gate may take (None: no limit)
    hooks: dict[str, Callable] = field(default_factory=dict)  # tests: e.g. after_step


def log_console() -> Console:
    """Rich on a terminal; in a log file or CI, lines at full length instead of wrapped at 80 columns."""
    return Console(soft_wrap=not sys.stdout.isatty())


def train_run(request: TrainRequest, console: Console | None = None, datasets=None) -> int:
    """The whole `alignguard train` command. `datasets` (tests) replaces loading --data / the benchmark."""
    from alignguard.isolation import set_deadline

    # in the CLI's worker, a hung import or forward before the verdict ends the run; training itself is unbounded
    set_deadline(request.gate_timeout, "the design check before training")
    console = console or log_console()
    dist = from_environment()
    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.loader import load_spec

    spec = load_spec(request.spec)
    model_file = load_model_file(request.model, spec.entry_points)
    overrides = dict(request.overrides)
    if request.data is not None:
        overrides["data.path"] = str(request.data)
    config = _requested_config(request, model_file, overrides)

    from alignguard.train.device import choose_device, runtime_facts

    init_process_group(dist, choose_device(config.device, runtime_facts(), dist.local_rank))
    try:
        gate = _gate(request, spec, model_file, dist, console)
        set_deadline(None, "training")
        if gate is None:
            return 1
        run_dir = broadcast_object(dist, _run_dir(request, spec.name))
        return _train(request, spec, model_file, config, overrides, gate, run_dir, dist, console, datasets)
    finally:
        shutdown(dist)


def _requested_config(request: TrainRequest, model_file, overrides: dict[str, Any]) -> TrainConfig:
    curriculum = getattr(model_file.module, "CURRICULUM", None)
    stages = curriculum_from_model_file(curriculum, str(model_file.path)) if curriculum is not None else None
    return build_config(request.config_file, overrides, stages)


def _gate(request: TrainRequest, spec, model_file, dist: DistInfo, console: Console):
    """Rank 0 runs the full check; every rank learns the verdict. None means: refused."""
    outcome = None
    if dist.is_main:
        from alignguard.api import check_model_file
        from alignguard.report.console import render_console

        report = check_model_file(spec, model_file, spec_path=str(request.spec))
        code = int(report.exit_code())
        if code != 0:
            render_console(report, console)
            if not request.skip_check:
                console.print(f"[bold red]alignguard train refused:[/] the model does not pass its design check "
                              f"(exit {code}); nothing was trained and no run directory was written. Fix the "
                              "findings above (or, knowingly, pass --skip-check-i-know).")
            else:
                console.print(Panel(f"[bold white on red]{escape(rundir.OVERRIDE_BANNER)}[/]", border_style="red"))
        else:
            counts = report.counts()
            console.print(f"[green]design check passed[/] ({counts['pass']} passed, {counts['waived']} waived): "
                          f"{escape(str(request.model))} implements {escape(spec.name)}")
        outcome = rundir.GateOutcome(report=report, exit_code=code, overridden=code != 0 and request.skip_check)
    refused = broadcast_object(dist, outcome is not None and not outcome.passed and not outcome.overridden)
    return None if refused else (outcome or rundir.GateOutcome(report=None, exit_code=0, overridden=False))


def _run_dir(request: TrainRequest, spec_name: str) -> Path:
    if request.out is not None:
        return Path(request.out)
    if request.resume:
        raise UsageError("--resume needs --out RUN_DIR (the run to continue)", fix="pass --out runs/NAME --resume")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in spec_name.lower()) or "run"
    return Path("runs") / f"{slug}-{stamp}"


def _train(request, spec, model_file, config: TrainConfig, overrides, gate, run_dir: Path, dist: DistInfo,
           console: Console, datasets) -> int:
    from alignguard.train.display import live_enabled
    from alignguard.train.sources import load_datasets
    from alignguard.train.trainer import Trainer

    spec_sha, model_sha = rundir.sha256_of(request.spec), rundir.sha256_of(request.model)
    payload, lock, created = None, None, False
    try:
        if request.resume:
            if dist.is_main:
                lock = rundir.RunLock(_existing_run(run_dir))
            config, payload = _resume_config(run_dir, config, overrides, request, model_sha, console)
            if not _reopen(payload, config, run_dir, console):
                return 0
        elif dist.is_main:
            created = rundir.prepare_new_run(run_dir)
            lock = rundir.RunLock(run_dir)
        start_step = payload["progress"]["step"] if payload is not None else 0
        trainer = None
        try:
            data_handle = None
            if datasets is None:
                datasets, data_handle = load_datasets(config.data, dist)
            live = live_enabled(config.monitor.live, console.is_terminal)
            trainer = Trainer(spec=spec, model_file=model_file, config=config, run_dir=run_dir, datasets=datasets,
                              dist=dist, console=console, live=live, model_sha256=model_sha, spec_sha256=spec_sha,
                              hooks=request.hooks)
            if payload is not None:
                trainer.resume_from(payload)
            _fit(request, run_dir, config, gate, trainer, datasets, spec_sha, model_sha, payload, dist, console,
                 data_handle)
            return 0
        except BaseException:
            if dist.is_main and not request.resume and (trainer is None or trainer.progress["step"] == 0):
                rundir.discard_new_run(run_dir, created)  # nothing trained: the retry finds what it left
            raise
        finally:
            if trainer is not None:
                trainer.close()
                # run.json changes only when this run trained (a failed resume leaves it as it was)
                trained = trainer.progress["step"] > start_step
                if dist.is_main and trained and (run_dir / rundir.RUN_FILE).exists():
                    rundir.update_run(run_dir, last_step=trainer.progress["step"])
    finally:
        if lock is not None:
            lock.release()


def _fit(request, run_dir, config, gate, trainer, datasets, spec_sha, model_sha, payload, dist, console,
         data_handle) -> None:
    from alignguard.train.records import MetricsLog, truncate_after

    log = None
    if dist.is_main:
        _record_start(run_dir, request, gate, config, trainer, datasets, spec_sha, model_sha, payload)
        if payload is not None:
            truncate_after(run_dir / rundir.METRICS_FILE, payload["progress"]["step"], payload["progress"]["epoch"])
        log = MetricsLog(run_dir / rundir.METRICS_FILE, run_dir / "tensorboard" if config.monitor.tensorboard else None)
        if log.tensorboard_problem:
            console.print(f"[yellow]note:[/] no TensorBoard events for this run: the tensorboard package "
                          f"cannot be imported ({escape(log.tensorboard_problem)}). Every value is in "
                          f"{rundir.METRICS_FILE}; pip install 'alignguard[tensorboard]' for TensorBoard, or set "
                          "monitor.tensorboard: false to silence this note.")
        console.print(f"training on {trainer.device} ({trainer.precision.reason}); world size {dist.world}; "
                      f"stages: " + ", ".join(f"{s.name} ({s.epochs} ep.)" for s in trainer.stages)
                      + f"; {trainer.steps_per_epoch} steps/epoch; run directory {run_dir}")
        if gate.overridden:
            console.print(Panel(f"[bold white on red]{escape(rundir.OVERRIDE_BANNER)}[/]", border_style="red"))
    try:
        try:
            summary = trainer.fit(log)
        except NonFiniteLossError:
            if log is not None:
                log.write({"kind": "event", "event": "nonfinite_loss", "step": trainer.progress["step"]})
            raise
        finally:
            if log is not None:
                log.close()
        if dist.is_main:
            _finish(run_dir, trainer, summary, console, data_handle)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        raise CheckpointError(f"the disk is full: writing {Path(error.filename or run_dir).name} failed at step "
                              f"{trainer.progress['step']}", where=str(error.filename or run_dir),
                              fix="free disk space (or point --out at a larger disk), then continue with "
                              "--resume; the last checkpoint is intact") from None


def _existing_run(run_dir: Path) -> Path:
    if not run_dir.is_dir():
        raise UsageError(f"there is no run directory '{run_dir}' to resume",
                         fix="check --out, or start a new run without --resume")
    return run_dir


def _reopen(payload: dict[str, Any], config: TrainConfig, run_dir: Path, console: Console) -> bool:
    """Whether a resumed run has steps left; a run that stopped at its --max-steps continues under a larger one."""
    progress = payload["progress"]
    if not progress.get("finished"):
        return True
    step, reason = progress["step"], progress.get("stop_reason") or "finished"
    if reason == "max_steps reached" and (config.max_steps is None or config.max_steps > step):
        payload["progress"] = {**progress, "finished": False, "stop_reason": None}
        console.print(f"continuing {run_dir} from step {step} (it had stopped at its step budget) to "
                      f"{config.max_steps if config.max_steps else 'the end of its curriculum'}")
        return True
    if reason == "max_steps reached":
        why = f"--max-steps {config.max_steps} is not above the step the run stopped at ({step})"
        how = f"pass --max-steps larger than {step}"
    else:
        why = f"the run already ended ({reason}) at step {step}"
        how = "start a new run to train longer (its checkpoints/best.pt holds the best weights)"
    console.print(f"[yellow]nothing to train:[/] {why}; {run_dir} is unchanged. To train more, {how}.")
    return False


def _resume_config(run_dir: Path, requested: TrainConfig, overrides: dict[str, Any], request: TrainRequest,
                   model_sha: str, console: Console):
    from alignguard.train import checkpoint as ckpt
    from alignguard.train.trainer import LAST

    run = rundir.read_run(run_dir)
    stored = _stored_config(run_dir)
    payload = ckpt.load_checkpoint(run_dir / rundir.CHECKPOINTS / LAST)
    explicit = set(overrides) | ({"*"} if request.config_file else set())
    differences = [d for d in config_differences(stored, requested)
                   if ("*" in explicit or any(d == k or d.startswith(k + ".") for k in explicit))]
    forbidden = [d for d in differences if not any(d == k or d.startswith(k + ".") for k in RESUMABLE_CHANGES)]
    if forbidden:
        raise CheckpointError(
            f"the resumed run was trained with a different configuration: {', '.join(forbidden)} differ",
            where=str(run_dir / rundir.CONFIG_FILE),
            fix="resume without changing those settings (only " + ", ".join(RESUMABLE_CHANGES) + " may change), "
            "or start a new run")
    merged = stored.model_dump(mode="json")
    for key in differences:
        node_new, node_old = requested.model_dump(mode="json"), merged
        parts = key.split(".")
        for part in parts[:-1]:
            node_new, node_old = node_new[part], node_old[part]
        node_old[parts[-1]] = node_new[parts[-1]]
    config = validate_config(merged, "resumed configuration")
    if run["model"]["sha256"] != model_sha:
        console.print(f"[bold yellow]warning:[/] the model file changed since this run started "
                      f"({run['model']['sha256'][:12]} -> {model_sha[:12]}); resuming only if the weights still fit")
    return config, payload


def _stored_config(run_dir: Path) -> TrainConfig:
    from alignguard.errors import AlignguardError

    record = rundir.read_record(run_dir, rundir.CONFIG_FILE, "the run's training configuration")
    try:
        return validate_config(record, str(run_dir / rundir.CONFIG_FILE))
    except AlignguardError as error:
        raise CheckpointError(f"{rundir.CONFIG_FILE} is damaged: {error.what}", where=error.where,
                              fix="restore the file from a backup, or start a new run") from None


def _record_start(run_dir, request, gate, config, trainer, datasets, spec_sha, model_sha, payload) -> None:
    from alignguard.train.curriculum import never_trained

    facts = {
        "device": trainer.device, "precision": {"mode": trainer.precision.mode, "scaler": trainer.precision.use_scaler,
                                                 "reason": trainer.precision.reason},
        "deterministic": config.deterministic, "seed": config.seed,
        "distributed": {"world": trainer.dist.world, "backend": "nccl" if trainer.device.startswith("cuda") and
                        trainer.dist.enabled else ("gloo" if trainer.dist.enabled else None)},
        "data": datasets.description,
        "curriculum": [{"name": s.name, "train": list(s.prefixes), "epochs": s.epochs} for s in trainer.stages],
        "never_trained": never_trained(trainer.model, trainer.stages),
        "beta_schedule": repr(getattr(trainer.model_file.module, "BETA_SCHEDULE", None)),
        "dataloader_workers": trainer.workers,
    }
    if payload is None:
        rundir.record_provenance(run_dir, spec_path=request.spec, model_path=request.model, gate=gate,
                                 config_json=config.model_dump(mode="json"), extra=facts)
        rundir.point_latest(run_dir)
    else:
        rundir.update_run(run_dir, resume={
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "step": payload["progress"]["step"],
            "command": sys.argv, "spec_sha256": spec_sha, "model_sha256": model_sha, "gate_passed": gate.passed,
            "gate_overridden": gate.overridden, "device": trainer.device, "world": trainer.dist.world})
        (run_dir / rundir.CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=1) + "\n")


def _finish(run_dir: Path, trainer, summary: dict[str, Any], console: Console, data_handle) -> None:
    from alignguard.train.plots import draw_report
    from alignguard.train.records import read_records

    records = read_records(run_dir / rundir.METRICS_FILE)
    figures = draw_report(records, run_dir / "report")
    best = [r for r in records if r.get("kind") == "epoch" and r.get("epoch") == summary["best_epoch"]]
    if best:
        from alignguard.train.evaluation import metrics_table

        console.print(metrics_table(best[-1]["val"], f"Validation (held-out cell lines), best epoch "
                                    f"{summary['best_epoch']}"))
    test = None
    if trainer.datasets.test is not None and (run_dir / rundir.CHECKPOINTS / "best.pt").is_file():
        test = evaluate_checkpoint(run_dir, trainer.datasets.test, trainer.datasets.truth, console,
                                   title="Test (held-out cell lines), best checkpoint", model_file=trainer.model_file,
                                   spec=trainer.spec, config=trainer.config, panel=trainer.datasets.panel)
    summary = {**summary, "figures": [str(p.relative_to(run_dir)) for p in figures],
               "best_validation": best[-1]["val"] if best else None, "test": test}
    (run_dir / "summary.json").write_text(json.dumps(_clean(summary), indent=1) + "\n")
    console.print(f"stopped: {summary['stop_reason']}; best {summary['metric']} {_f(summary['best_value'])} at epoch "
                  f"{summary['best_epoch']}; report: {run_dir / 'report'}; checkpoints: {run_dir / rundir.CHECKPOINTS}")
    if summary["best_epoch"] is not None and not summary.get("best_full_design", True):
        console.print(f"[yellow]note:[/] the run stopped before stage '{summary['full_design_stage']}', where every "
                      "part of the design trains, so best.pt is a partly trained model (--resume with a larger "
                      "--max-steps to train the full design)")


def evaluate_checkpoint(run_dir: Path, split, truth, console: Console, *, title: str, model_file, spec,
                        config: TrainConfig, panel: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load best.pt into a fresh model, predict `split`, print and return the metrics (and, with the
    benchmark's panel of unseen cell lines, corr(M, M*) across them: train/panel.py)."""
    import torch

    from alignguard.train import checkpoint as ckpt
    from alignguard.train.distributed import DistInfo
    from alignguard.train.evaluation import assess, metrics_table, predict
    from alignguard.train.trainer import BEST, _forward_names, _output_keys

    payload = ckpt.load_checkpoint(Path(run_dir) / rundir.CHECKPOINTS / BEST)
    model = model_file.build()
    ckpt.load_model_state(model, payload["model"], Path(run_dir) / rundir.CHECKPOINTS / BEST)
    device = "cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu"
    model.to(device)
    names, keys = _forward_names(model), _output_keys(spec)
    forward = lambda b: model(**{n: b[n] for n in names if n in b})  # noqa: E731
    to_device = lambda b: {k: v.to(device) for k, v in b.items()}  # noqa: E731
    predictions = predict(model, split, forward=forward, to_device=to_device,
                          batch_size=config.eval_batch_size, dist=DistInfo(), output_keys=keys,
                          probe_rows=config.monitor.probe_examples)
    result = assess(predictions, split.cell_names, probes=True, seed=config.seed, truth=truth)
    recovery = (result.get("probes") or {}).get("truth_recovery")
    if recovery is not None and panel:
        from alignguard.train.panel import panel_recovery

        recovery["unseen_panel"] = panel_recovery(model, panel, split, forward=forward, to_device=to_device,
                                                  output_keys=keys, batch_size=config.eval_batch_size)
    result["checkpoint"] = {"epoch": payload.get("epoch"), "step": payload.get("step"),
                            "validation_value": payload.get("value"), "full_design": payload.get("full_design")}
    console.print(metrics_table(result["metrics"], title))
    if recovery:
        from alignguard.train.evaluation import truth_table

        console.print(truth_table(recovery, "Truth recovery (the benchmark's hidden M*, T*)"))
    return result


def evaluate_run(run_dir: Path, data: Path | None, console: Console | None = None) -> dict[str, Any]:
    """`alignguard evaluate RUN_DIR`: the best checkpoint on the test split (held-out cell lines)."""
    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.loader import load_spec
    from alignguard.train.sources import load_datasets

    console = console or log_console()
    run_dir = Path(run_dir)
    run = rundir.read_run(run_dir)
    config = _stored_config(run_dir)
    if not (run_dir / rundir.CHECKPOINTS / "best.pt").is_file():
        raise CheckpointError("the run has no best checkpoint to evaluate (checkpoints/best.pt is written after "
                              "the first validated epoch)", where=str(run_dir / rundir.CHECKPOINTS / "best.pt"),
                              fix="train the run past its first epoch (--resume), then evaluate it")
    model_path = Path(run["model"]["path"])
    if not model_path.is_file() or rundir.sha256_of(model_path) != run["model"]["sha256"]:
        raise CheckpointError(
            f"the model file this run was trained with is {'missing' if not model_path.is_file() else 'changed'}",
            where=str(model_path),
            fix=f"restore it (a copy is in {run_dir / 'model.py'}, sha256 {run['model']['sha256'][:12]}…) "
            "and run evaluate again")
    spec = load_spec(run_dir / "spec.yaml")
    model_file = load_model_file(model_path, spec.entry_points)
    data_config = config.data.model_copy(update={"path": data} if data is not None else {})
    datasets, _ = load_datasets(data_config)
    split, name = (datasets.test, "test") if datasets.test is not None else (datasets.val, "val")
    if datasets.test is None:
        console.print("[yellow]the dataset has no test split; evaluating on the validation split[/]")
    result = evaluate_checkpoint(run_dir, split, datasets.truth, console,
                                 title=f"{name.capitalize()} split (held-out cell lines), best checkpoint",
                                 model_file=model_file, spec=spec, config=config, panel=datasets.panel)
    result["split"], result["data"] = name, datasets.description.get("path")
    result = _clean(result)  # what evaluation.json holds is what the caller gets (evaluate --format json)
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _clean(value):
    from alignguard.train.records import clean

    return clean(value)


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
