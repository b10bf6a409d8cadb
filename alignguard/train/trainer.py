"""The training loop: curriculum, AMP, DDP, monitoring, validation, early stopping, checkpoints.

One `Trainer` per process. Progress (epoch, batch within the epoch, step, stage, early-stopping
state, running sums) lives in `self.progress`, a dict of primitives that goes into every
checkpoint, so `--resume` replays the same data order, RNG stream and schedule from the exact
step a killed run stopped at.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from alignguard.errors import DataError, ModelFileError, NonFiniteLossError, TrainingError
from alignguard.train import checkpoint as ckpt
from alignguard.train.config import TrainConfig
from alignguard.train.curriculum import Stage, allocate, apply_stage, full_design_stage, judge_epoch, progress_after
from alignguard.train.data import Datasets, EpochBatches, SubsetSplit, check_batch, fixed_subset, make_loader
from alignguard.train.device import (autocast_context, choose_device, choose_precision, default_workers,
                                     runtime_facts, seed_everything)
from alignguard.train.display import Display, epoch_lines
from alignguard.train.distributed import DistInfo, all_reduce_mean_, all_reduce_sum_, broadcast_object
from alignguard.train.evaluation import assess, predict
from alignguard.train.metrics import ceiling_of, selection_value
from alignguard.train.monitor import GradientMonitor, epoch_alarms, flatten, per_term_gradients
from alignguard.train.records import MetricsLog

LAST, BEST = "last.pt", "best.pt"


class TrainingInterrupted(Exception):
    """Ctrl-C: the loop stopped at a step boundary and wrote `checkpoint` first."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"interrupted at step {step}")
        self.step, self.checkpoint = step, checkpoint

    def __reduce__(self):  # crosses from the training worker to the CLI
        return (type(self), (self.step, self.checkpoint))


class Trainer:
    def __init__(self, *, spec, model_file, config: TrainConfig, run_dir: Path, datasets: Datasets,
                 dist: DistInfo = DistInfo(), console: Console | None = None, live: bool = False,
                 model_sha256: str = "", spec_sha256: str = "", hooks: dict[str, Callable] | None = None):
        import torch

        self.spec, self.model_file, self.config, self.dist = spec, model_file, config, dist
        self.run_dir, self.datasets = Path(run_dir), datasets
        self.console = console or Console()
        self.hooks = hooks or {}
        self.model_sha256, self.spec_sha256 = model_sha256, spec_sha256
        self.checkpoints = self.run_dir / "checkpoints"

        facts = runtime_facts()
        self.device = choose_device(config.device, facts, dist.local_rank)
        self.precision = choose_precision(config.amp, self.device, facts)
        self.workers = default_workers(config.data.num_workers, self.device)
        self.pin_memory = self.device.startswith("cuda")
        self._previous_threads = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        self._previous_deterministic = torch.are_deterministic_algorithms_enabled()
        self._previous_fill = torch.utils.deterministic.fill_uninitialized_memory
        seed_everything(config.seed + dist.rank, config.deterministic)
        try:
            self._build(spec, model_file, config, datasets, dist, live)
        except BaseException:
            self.close()  # give the process its determinism setting back
            raise

    def _build(self, spec, model_file, config: TrainConfig, datasets: Datasets, dist: DistInfo, live: bool) -> None:
        import torch

        self.model = model_file.build().to(self.device)
        self.forward_names = _forward_names(self.model)
        self.keys = _output_keys(spec)
        names = [n for n, _ in self.model.named_parameters()]
        self.stages: list[Stage] = allocate(_stages(config), config.epochs, names, "training config (curriculum)")
        self.full_design_from = full_design_stage(self.stages, names)  # best.pt is chosen from this stage on
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.optim.lr,
                                           betas=config.optim.betas, weight_decay=config.optim.weight_decay)
        self.steps_per_epoch = len(self._train_batches(0, 0))
        if self.steps_per_epoch == 0:
            raise DataError(f"the training split has {len(datasets.train)} examples, fewer than one batch of "
                            f"{config.batch_size}", fix="lower --batch-size or use a larger dataset")
        planned = self.steps_per_epoch * sum(s.epochs for s in self.stages)
        self.planned_steps = min(planned, config.max_steps) if config.max_steps else planned
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_factor(config, self.planned_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.use_scaler)
        self._apply_beta_override()

        gradients = spec.gradients
        self.monitor = GradientMonitor(
            vanish_ratio=config.monitor.vanish_ratio,
            min_cosine=config.monitor.min_cosine if config.monitor.min_cosine is not None else gradients.min_cosine,
            min_net_ratio=(config.monitor.min_net_ratio if config.monitor.min_net_ratio is not None
                           else gradients.min_net_ratio),
            min_shares={name: (loss.min_share, loss.step) for name, loss in spec.losses.items()},
            pairs=gradients.pairs)
        self.val_split = SubsetSplit(datasets.val, fixed_subset(len(datasets.val), config.data.eval_examples,
                                                                config.seed))
        self.progress: dict[str, Any] = {
            "epoch": 0, "batch_in_epoch": 0, "step": 0, "stage_index": 0, "stage_epoch": 0,
            "best_value": None, "best_epoch": None, "best_full_design": False, "bad_epochs": 0, "loss_history": [],
            "finished": False,
            "epoch_sums": {}, "epoch_steps": 0, "epoch_wait": 0.0, "epoch_time": 0.0, "stop_reason": None,
            "window_sums": {}, "window_steps": 0,
        }
        self.ddp = None
        self.stage_params: list = []
        self.stop_requested = False
        self.log: MetricsLog | None = None
        self.display = Display(self.console, live=live and dist.is_main)

    # --- setup helpers ---------------------------------------------------------------------

    def _apply_beta_override(self) -> None:
        override = self.config.beta
        if override is None:
            return
        module = self.model_file.module
        current = getattr(module, "BETA_SCHEDULE", None)
        if current is None:
            raise TrainingError(
                "the config overrides beta, but the model file defines no BETA_SCHEDULE to override",
                where=str(self.model_file.path),
                fix="define BETA_SCHEDULE (a callable step -> beta with start_step, end_step, beta_max) in the "
                "model file and read it in loss_terms, or drop `beta:` from the config")
        import dataclasses

        try:
            module.BETA_SCHEDULE = dataclasses.replace(current, **override.model_dump())
        except (TypeError, ValueError) as error:
            raise TrainingError(f"cannot apply the beta override to BETA_SCHEDULE: {error}",
                                where=str(self.model_file.path),
                                fix="make BETA_SCHEDULE a dataclass with start_step, end_step and beta_max") from None

    def beta(self, step: int) -> float | None:
        schedule = getattr(self.model_file.module, "BETA_SCHEDULE", None)
        try:
            return float(schedule(step)) if callable(schedule) else None
        except Exception:  # a user-defined schedule that cannot be queried is just not logged
            return None

    def _train_batches(self, epoch: int, skip: int) -> EpochBatches:
        return EpochBatches(len(self.datasets.train), self.config.batch_size, epoch=epoch, seed=self.config.seed,
                            rank=self.dist.rank, world=self.dist.world, shuffle=True,
                            limit=self.config.data.train_examples_per_epoch, skip=skip)

    def _enter_stage(self, stage: Stage) -> None:
        import torch

        index = self.progress["stage_index"]
        self.monitor.enter_stage(index)
        if getattr(self, "_stage_entered", None) == index:
            return
        self._stage_entered = index
        trained = apply_stage(self.model, stage)
        self.stage_params = [p for p in self.model.parameters() if p.requires_grad]
        self.stage_names = trained
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            index = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
            self.ddp = DistributedDataParallel(self.model, device_ids=index,
                                               find_unused_parameters=self._has_unused_parameters())
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache() if self.device.startswith("cuda") else None

    def _has_unused_parameters(self) -> bool:
        """DDP must be told when a trainable parameter gets no gradient (one trial step, RNG untouched)."""
        import torch

        from alignguard.train.data import batch_tensors

        batch = self._to_device(batch_tensors(self.datasets.train, _first_rows(self.datasets.train, 8)))
        devices = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            outputs = self._forward(self.model, batch)
            terms = self._terms(batch, outputs, self.progress["step"])
            grads = torch.autograd.grad(sum(terms.values()), self.stage_params, allow_unused=True)
        return any(g is None for g in grads)

    # --- one batch -------------------------------------------------------------------------

    def _to_device(self, batch: dict) -> dict:
        return {key: value.to(self.device, non_blocking=self.pin_memory) for key, value in batch.items()}

    def _forward(self, module, batch: dict):
        outputs = self.model_file.forward(module, batch, on="a dataset batch", names=self.forward_names)
        if not isinstance(outputs, dict) or self.keys["logit"] not in outputs:
            raise ModelFileError(
                f"forward must return a dict with the prediction under '{self.keys['logit']}'",
                where=str(self.model_file.path),
                fix="return {'logit': ..., ...} (or bind the `logit` symbol to the right key in the spec)")
        return outputs

    def _terms(self, batch: dict, outputs: dict, step: int) -> dict:
        import torch

        terms = self.model_file.loss_terms_at(self.model, batch, outputs, step)
        for name, term in terms.items():
            if not isinstance(term, torch.Tensor) or term.numel() != 1:
                raise ModelFileError(f"loss term '{name}' is not a scalar tensor", where=str(self.model_file.path),
                                     fix="return one scalar tensor per term (e.g. reduce with .mean())")
        return {name: term.reshape(()) for name, term in terms.items()}

    def _step(self, batch: dict) -> dict[str, float]:
        """One optimiser step; returns the (rank-averaged) term values. Raises on non-finite loss."""
        import torch

        step = self.progress["step"]
        module = self.ddp or self.model
        with autocast_context(self.precision, self.device):
            outputs = self._forward(module, batch)
            terms = self._terms(batch, outputs, step)
        names = list(terms)
        total = torch.stack([t.float() for t in terms.values()]).sum()  # terms may mix bf16 and fp32
        values = torch.stack([t.detach().float() for t in terms.values()] +
                             [torch.tensor(float(self.stop_requested), device=total.device)])
        all_reduce_sum_(self.dist, values)
        host = values.tolist()
        stop_votes, host = host[-1], [v / self.dist.world for v in host[:-1]]
        term_values = dict(zip(names, host))
        if not all(math.isfinite(v) for v in host):
            bad = ", ".join(f"{n} = {v}" for n, v in term_values.items() if not math.isfinite(v))
            raise NonFiniteLossError(
                f"the loss became non-finite at step {step} (epoch {self.progress['epoch']}): {bad}",
                where=f"loss_terms in {self.model_file.path}",
                fix=f"the last good checkpoint is {self.checkpoints / LAST} (not overwritten); lower optim.lr, "
                "keep optim.grad_clip on, check the loss for log(0) or division by zero, then --resume")
        if step % self.config.monitor.every_steps == 0 and self.config.monitor.probes:
            self._pending_batch_probes = self._batch_probes(batch, outputs)
        monitored = self.config.monitor.gradients and step % self.config.monitor.every_steps == 0
        scale = float(self.scaler.get_scale()) if self.precision.use_scaler else 1.0
        if monitored:
            self._monitor_step(terms, term_values, total, scale, step)
        elif self.precision.use_scaler:
            self.scaler.scale(total).backward()
        else:
            total.backward()
        self._update(step)
        self.progress["step"] = step + 1
        self.stop_requested = self.stop_requested or stop_votes > 0
        return term_values

    def _batch_probes(self, batch: dict, outputs: dict) -> dict[str, Any]:
        """Free every-N-steps view of the modulator on the current training batch: corr(M, U_I),
        corr(T, accessibility) and T per training cell line (I(z_I; c) needs held-out data: it is
        measured on validation each epoch)."""
        import torch

        from alignguard.train.probes import pearson, per_cell_mean

        found = {}
        for name in ("M", "U_I", "T"):
            value = outputs.get(self.keys[name])
            if isinstance(value, torch.Tensor) and value.numel() == len(batch["y"]):
                found[name] = value.detach().float().reshape(-1).cpu().numpy()
        cell = batch["cell"].cpu().numpy()
        result: dict[str, Any] = {}
        if "M" in found and "U_I" in found:
            result["corr_M_UI"] = pearson(found["M"], found["U_I"])
        if "T" in found:
            result["T_per_cell"] = per_cell_mean(found["T"], cell, self.datasets.train.cell_names)
            result["corr_T_access"] = pearson(found["T"], batch["c"][:, -1].float().cpu().numpy())
        return result

    def _monitor_step(self, terms, term_values, total, scale: float, step: int) -> None:
        """Per-term gradients (one autograd.grad each); their sum is the step's gradient on one process."""
        term_grads = per_term_gradients(terms, self.stage_params, scale)
        flat = all_reduce_mean_(self.dist, flatten(term_grads, self.stage_params, scale))
        record, raised, cleared = self.monitor.observe(list(terms), term_values, flat, step)
        if self.ddp is not None:  # DDP syncs gradients in backward; autograd.grad bypassed it
            (self.scaler.scale(total) if self.precision.use_scaler else total).backward()
        else:
            for index, parameter in enumerate(self.stage_params):
                pieces = [grads[index] for _, grads in term_grads if grads is not None]
                parameter.grad = sum(pieces[1:], pieces[0]).detach() if pieces else None
        self._pending_gradient_record = record
        if raised or cleared:
            for alarm in raised:
                self._write({"kind": "alarm", "step": step, "epoch": self.progress["epoch"], **alarm.as_dict()})
            self.display.alarm(raised, cleared)

    def _update(self, step: int) -> None:
        import torch

        clip = self.config.optim.grad_clip
        self._updating = True
        try:
            if self.precision.use_scaler:
                self.scaler.unscale_(self.optimizer)
            if clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.stage_params, clip)
                if not self.precision.use_scaler and not math.isfinite(float(norm)):
                    raise NonFiniteLossError(
                        f"the gradient became non-finite at step {step} although the loss was finite",
                        where=f"loss_terms / forward in {self.model_file.path}",
                        fix=f"the last good checkpoint is {self.checkpoints / LAST}; look for a sqrt or log at 0 "
                        "in the model, lower optim.lr, then --resume")
            if self.precision.use_scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        finally:
            self._updating = False

    # --- records ---------------------------------------------------------------------------

    def _write(self, record: dict) -> None:
        if self.log is not None:
            record.setdefault("time", round(time.time(), 3))
            self.log.write(record)

    def _accumulate(self, term_values: dict[str, float]) -> None:
        for bucket, count in (("epoch_sums", "epoch_steps"), ("window_sums", "window_steps")):
            sums = self.progress[bucket]
            for name, value in term_values.items():
                sums[name] = sums.get(name, 0.0) + value
            sums["total"] = sums.get("total", 0.0) + sum(term_values.values())
            self.progress[count] += 1

    def _step_record(self, stage: Stage) -> None:
        steps = max(self.progress["window_steps"], 1)
        losses = {k: v / steps for k, v in self.progress["window_sums"].items()}
        record = {"kind": "step", "step": self.progress["step"] - 1, "epoch": self.progress["epoch"],
                  "stage": stage.name, "lr": self.scheduler.get_last_lr()[0], "beta": self.beta(self.progress["step"] - 1),
                  "loss": losses, "alarms": sorted(self.monitor.active)}
        record.update(getattr(self, "_pending_gradient_record", None) or {})
        if getattr(self, "_pending_batch_probes", None):
            record["batch_probes"] = self._pending_batch_probes
        self._pending_gradient_record = self._pending_batch_probes = None
        self._write(record)
        self.display.show({"step": record["step"], "lr": record["lr"], **{f"loss {k}": v for k, v in losses.items()},
                           **{f"share {k}": v for k, v in (record.get("grad_share") or {}).items()}})
        self.progress["window_sums"], self.progress["window_steps"] = {}, 0

    # --- checkpoints -----------------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.capture_rng(),
            "progress": dict(self.progress),
            "monitor": self.monitor.state_dict(),
            "config": self.config.model_dump(mode="json"),
            "planned_steps": self.planned_steps,
            "world": self.dist.world,
            "model_sha256": self.model_sha256,
            "spec_sha256": self.spec_sha256,
        }

    def save_last(self) -> Path | None:
        if not self.dist.is_main:
            return None
        path = self.checkpoints / LAST
        ckpt.save_atomic(self._payload(), path)
        return path

    def _save_best(self, epoch: int, value: float, validation: dict) -> None:
        if self.dist.is_main:
            ckpt.save_atomic({"model": self.model.state_dict(), "epoch": epoch, "step": self.progress["step"],
                              "metric": self.config.early_stopping.metric, "value": value,
                              "full_design": self.progress["stage_index"] >= self.full_design_from,
                              "validation": _json(validation), "config": self.config.model_dump(mode="json"),
                              "model_sha256": self.model_sha256}, self.checkpoints / BEST)

    def resume_from(self, payload: dict[str, Any]) -> None:
        ckpt.load_model_state(self.model, payload["model"], self.checkpoints / LAST)
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["scheduler"])
            if payload["scaler"] and self.precision.use_scaler:  # a CPU/bf16 run has no scaler state
                self.scaler.load_state_dict(payload["scaler"])
            self.progress.update(payload["progress"])
            self.monitor.load_state_dict(payload["monitor"])
            ckpt.restore_rng(payload["rng"])
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            from alignguard.errors import CheckpointError

            raise CheckpointError(f"checkpoint {LAST} has a damaged or foreign training state ({type(error).__name__}: "
                                  f"{error})", where=str(self.checkpoints / LAST),
                                  fix="start a new run (the weights alone are in best.pt)") from None
        self.optimizer.zero_grad(set_to_none=True)

    # --- the loop --------------------------------------------------------------------------

    def fit(self, log: MetricsLog | None) -> dict[str, Any]:
        """Train until the curriculum ends, early stopping ends it, or max_steps; returns the summary."""
        self.log = log
        previous_handler = self._install_sigint()
        import torch

        try:
            while not self.progress["finished"]:
                self._run_epoch()
        except torch.cuda.OutOfMemoryError:
            raise TrainingError(
                f"the GPU ran out of memory at step {self.progress['step']} with batch_size {self.config.batch_size}",
                where=self.device,
                fix=f"lower --batch-size (e.g. {max(2, self.config.batch_size // 2)}) or eval_batch_size, keep "
                "amp on, then --resume (the last checkpoint is intact)") from None
        except KeyboardInterrupt:  # a second Ctrl-C, or no handler (not the main thread)
            path = None if getattr(self, "_updating", False) else self._save_quietly()
            raise TrainingInterrupted(self.progress["step"], path) from None
        finally:
            self._restore_sigint(previous_handler)
            self.display.close()
        return self.summary()

    def _run_epoch(self) -> None:
        import torch

        progress, config = self.progress, self.config
        stage = self.stages[progress["stage_index"]]
        epoch = progress["epoch"]
        self._enter_stage(stage)
        batches = self._train_batches(epoch, progress["batch_in_epoch"])
        self.display.start_epoch(epoch, stage.name, len(batches) + progress["batch_in_epoch"])
        if progress["batch_in_epoch"] == 0:
            self._write({"kind": "event", "step": progress["step"], "epoch": epoch, "event": "epoch_start",
                         "stage": stage.name, "training": self.stage_names})
        loader = iter(make_loader(self.datasets.train, batches, workers=self.workers, pin_memory=self.pin_memory,
                                  seed=self.config.seed * 100_003 + epoch))
        self.model.train()
        started = time.perf_counter()
        for _ in range(len(batches)):
            if self._budget_spent():
                break
            waited = time.perf_counter()
            batch = next(loader)
            progress["epoch_wait"] += time.perf_counter() - waited
            if progress["step"] == 0:
                check_batch(batch, where="the training split's first batch")
            values = self._step(self._to_device(batch))
            progress["batch_in_epoch"] += 1
            self._accumulate(values)
            self.display.advance(values if progress["step"] % 10 == 0 else None)
            if (progress["step"] - 1) % config.monitor.every_steps == 0:
                self._step_record(stage)
            if "after_step" in self.hooks:
                self.hooks["after_step"](self)
            if self.stop_requested:
                progress["epoch_time"] += time.perf_counter() - started
                raise TrainingInterrupted(progress["step"], self._save_quietly())
            if config.checkpoint_every_steps and progress["step"] % config.checkpoint_every_steps == 0:
                progress["epoch_time"] += time.perf_counter() - started
                started = time.perf_counter()
                self.save_last()
        del loader
        progress["epoch_time"] += time.perf_counter() - started
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self._end_epoch(stage)

    def _budget_spent(self) -> bool:
        return self.config.max_steps is not None and self.progress["step"] >= self.config.max_steps

    def _end_epoch(self, stage: Stage) -> None:
        progress, config = self.progress, self.config
        epoch = progress["epoch"]
        predictions = predict(self.model, self.val_split, forward=lambda b: self._forward(self.model, b),
                              to_device=self._to_device, batch_size=config.eval_batch_size, dist=self.dist,
                              output_keys=self.keys, probe_rows=config.monitor.probe_examples,
                              workers=self.workers, pin_memory=self.pin_memory,
                              should_stop=lambda: self.stop_requested)
        if predictions.interrupted:
            raise TrainingInterrupted(progress["step"], self._save_quietly())
        verdict = None
        if self.dist.is_main:
            verdict = self._judge_epoch(stage, predictions)
        verdict = broadcast_object(self.dist, verdict)
        if verdict["improved"]:
            self._save_best(epoch, verdict["value"], verdict["validation"])
        progress.update(verdict["progress"])
        self.save_last()

    def _judge_epoch(self, stage: Stage, predictions) -> dict[str, Any]:
        """Rank 0: metrics, probes, alarms, the epoch record and the early-stopping decision."""
        progress, config = self.progress, self.config
        epoch, steps = progress["epoch"], max(progress["epoch_steps"], 1)
        assessed = assess(predictions, self.val_split.cell_names, config.monitor.probes, config.seed,
                          truth=self.datasets.truth)
        validation, probes = assessed["metrics"], assessed.get("probes", {})
        train_loss = {k: v / steps for k, v in progress["epoch_sums"].items()}
        history = list(progress["loss_history"]) + [train_loss.get("total", float("nan"))]
        alarms = epoch_alarms(epoch, progress["step"], history, validation, probes,
                              config.monitor.plateau_ratio, config.monitor.leak_nats)
        metric = config.early_stopping.metric
        value = selection_value(validation, metric)
        last_stage = progress["stage_index"] == len(self.stages) - 1
        full_design = progress["stage_index"] >= self.full_design_from
        verdict = judge_epoch(value, progress["best_value"], progress["bad_epochs"], progress["stage_epoch"] + 1,
                              stage, last_stage, config.early_stopping.patience, config.early_stopping.min_delta,
                              self._budget_spent(), full_design=full_design,
                              best_full_design=progress.get("best_full_design", True))
        seconds = progress["epoch_time"]
        record = {
            "kind": "epoch", "epoch": epoch, "step": progress["step"], "stage": stage.name,
            "stage_start": progress["stage_epoch"] == 0, "train_loss": train_loss,
            "val": validation, "probes": probes,
            "selection": {"metric": metric, "value": value, "ceiling": ceiling_of(validation, metric),
                          "full_design": full_design},
            "improved": verdict.improved, "best_value": value if verdict.improved else progress["best_value"],
            "steps": progress["epoch_steps"], "seconds": seconds,
            "steps_per_second": progress["epoch_steps"] / seconds if seconds else None,
            "data_wait_fraction": progress["epoch_wait"] / seconds if seconds else None,
            "lr": self.scheduler.get_last_lr()[0], "beta": self.beta(progress["step"]),
            "alarms": [a.as_dict() for a in alarms], "active_step_alarms": sorted(self.monitor.active),
        }
        self._write(record)
        for alarm in alarms:
            self._write({"kind": "alarm", "epoch": epoch, **alarm.as_dict()})
        for line in epoch_lines(record):
            self.display.line(line)
        self.display.alarm(alarms, [])
        if verdict.stage_done and not last_stage:
            self._write({"kind": "event", "step": progress["step"], "epoch": epoch, "event": "stage_end",
                         "stage": stage.name, "reason": "patience" if verdict.patience_out else "epochs"})
        next_progress = {**progress_after(progress, verdict, value, last_stage), "loss_history": history,
                         "epoch_sums": {}, "epoch_steps": 0, "epoch_wait": 0.0, "epoch_time": 0.0}
        return {"improved": verdict.improved, "value": value, "validation": validation, "progress": next_progress}

    def _save_quietly(self) -> Path | None:
        try:
            return self.save_last()
        except Exception as error:  # the interrupt must still exit; say why there is no checkpoint
            self.console.print(f"[red]could not write the interrupt checkpoint: {error}[/]")
            return None

    # --- Ctrl-C ----------------------------------------------------------------------------

    def _install_sigint(self):
        """Ctrl-C (SIGINT) and SIGTERM (a launcher or scheduler stopping us) stop at the next step
        boundary with a checkpoint; a second signal aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def request_stop(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.console.print(f"[yellow]{name}: stopping after this step and writing a checkpoint "
                               "(send it again to abort at once)[/]")

        return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _restore_sigint(self, previous) -> None:
        for sig, handler in (previous or {}).items():
            signal.signal(sig, handler)

    # --- end -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {"best_epoch": self.progress["best_epoch"], "best_value": self.progress["best_value"],
                "best_full_design": self.progress.get("best_full_design", True),
                "full_design_stage": self.stages[self.full_design_from].name,
                "metric": self.config.early_stopping.metric, "steps": self.progress["step"],
                "epochs": self.progress["epoch"], "stop_reason": self.progress["stop_reason"],
                "device": self.device, "precision": self.precision.mode, "world": self.dist.world}

    def close(self) -> None:
        import torch

        torch.use_deterministic_algorithms(self._previous_deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = self._previous_fill
        torch.set_num_threads(self._previous_threads)


def _stages(config: TrainConfig):
    from alignguard.train.config import StageConfig

    return config.curriculum or [StageConfig(name="all", train=[""])]


def _lr_factor(config: TrainConfig, planned_steps: int) -> Callable[[int], float]:
    warmup, schedule = config.optim.warmup_steps, config.optim.schedule

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, planned_steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _forward_names(model) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _output_keys(spec) -> dict[str, str]:
    """Output dict keys of the design symbols (from the spec's bindings, else the symbol's own name)."""
    keys = {}
    for name in ("logit", "z_I", "M", "U_I", "T"):
        binding = spec.symbols.get(name) if spec is not None else None
        keys[name] = binding.output if binding is not None and binding.output else name
    return keys


def _first_rows(split, count: int):
    import numpy as np

    return np.arange(min(count, len(split)), dtype=np.int64)


def _json(value):
    from alignguard.train.records import clean

    return clean(value)
