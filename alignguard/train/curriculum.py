"""The design's staged training: which parameters train in each stage, and for how many epochs.

Freezing uses `requires_grad`, so frozen parameters cost no backward work and get no optimiser
update (AdamW skips parameters whose grad is None; their moments are kept for later stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignguard.errors import UsageError
from alignguard.train.config import StageConfig


@dataclass(frozen=True)
class Stage:
    name: str
    prefixes: tuple[str, ...]
    epochs: int

    def trains(self, parameter_name: str) -> bool:
        return any(p == "" or parameter_name == p or parameter_name.startswith(p + ".") for p in self.prefixes)


def allocate(stages: list[StageConfig], total_epochs: int, parameter_names: list[str], source: str) -> list[Stage]:
    """Epochs per stage: explicit `epochs` first, the rest of the budget split by `fraction`
    (stages with neither share equally), rounded cumulatively so the total is exact."""
    for stage in stages:
        for prefix in stage.train:
            if prefix and not any(n == prefix or n.startswith(prefix + ".") for n in parameter_names):
                tops = sorted({n.split(".")[0] for n in parameter_names})
                raise UsageError(
                    f"curriculum stage '{stage.name}' trains '{prefix}', which names no parameter of the model",
                    where=source,
                    fix=f"use module path prefixes of the model's parameters: {', '.join(tops)}",
                )
    explicit = sum(s.epochs for s in stages if s.epochs is not None)
    flexible = [s for s in stages if s.epochs is None]
    remaining = total_epochs - explicit
    if flexible and remaining < len(flexible):
        raise UsageError(
            f"{total_epochs} epochs cannot hold the curriculum: {explicit} go to stages with fixed epochs and "
            f"{len(flexible)} more stage(s) need at least one epoch each",
            where=source,
            fix=f"raise --epochs to at least {explicit + len(flexible)} or shorten the curriculum",
        )
    given = sum(s.fraction for s in flexible if s.fraction is not None)
    missing = [s for s in flexible if s.fraction is None]
    default = (max(1.0 - given, 0.0) / len(missing)) if missing and given < 1 else 1.0 / max(len(flexible), 1)
    weights = [s.fraction if s.fraction is not None else default for s in flexible]
    scale = sum(weights) or 1.0
    counts, cumulative, assigned = {}, 0.0, 0
    for stage, weight in zip(flexible, weights):
        cumulative += weight / scale * remaining
        end = max(assigned + 1, int(round(cumulative)))
        end = min(end, remaining - (len(flexible) - len(counts) - 1))  # leave one epoch per later stage
        counts[stage.name] = end - assigned
        assigned = end
    if flexible:
        counts[flexible[-1].name] += remaining - assigned
    return [Stage(s.name, tuple(s.train), s.epochs if s.epochs is not None else counts[s.name]) for s in stages]


def apply_stage(model, stage: Stage) -> list[str]:
    """Set requires_grad per the stage; returns the names of the parameters that train."""
    training = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(stage.trains(name))
        if parameter.requires_grad:
            training.append(name)
    return training


def never_trained(model, stages: list[Stage]) -> list[str]:
    return [n for n, _ in model.named_parameters() if not any(s.trains(n) for s in stages)]


def full_design_stage(stages: list[Stage], parameter_names: list[str]) -> int:
    """Index of the first stage by which every parameter the curriculum trains has been switched on.

    Before it, part of the design (e.g. CMDN's T before the joint stage) is still at its
    initialisation: such a checkpoint is not the designed model, however well it validates, so
    the best checkpoint is chosen from this stage on (see `judge_epoch`).
    """
    wanted = {n for n in parameter_names if any(s.trains(n) for s in stages)}
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        seen.update(n for n in wanted if stage.trains(n))
        if seen >= wanted:
            return index
    return max(len(stages) - 1, 0)


@dataclass(frozen=True)
class EpochVerdict:
    improved: bool  # this epoch becomes the best checkpoint
    bad_epochs: int  # epochs in a row without improvement, after this one
    stage_done: bool
    finished: bool
    reason: str | None  # why the run ends (None: it goes on)
    patience_out: bool
    full_design: bool = True  # the epoch trained every part of the design (see full_design_stage)


def judge_epoch(value: float | None, best: float | None, bad_epochs: int, stage_epoch: int, stage: Stage,
                last_stage: bool, patience: int, min_delta: float, budget_spent: bool, full_design: bool = True,
                best_full_design: bool = True) -> EpochVerdict:
    """Checkpoint selection and early stopping on validation AUPR inside the curriculum.

    An epoch of the full design (`full_design`: every part the curriculum trains has been switched
    on) always beats one from before it, whatever their AUPRs; among epochs of the same kind the
    higher AUPR wins. So the best checkpoint is the designed model as soon as one exists, and a
    run stopped before that (--max-steps) still has a best.pt, marked as not the full design.
    Running out of patience ends an early stage (the next stage starts) and ends the run in the
    last stage; a stage also ends when its epochs are spent. `stage_epoch` counts this epoch.
    """
    if value is None or (best is not None and best_full_design and not full_design):
        improved = False
    else:
        improved = best is None or (full_design and not best_full_design) or value > best + min_delta
    bad = 0 if improved else bad_epochs + 1
    patience_out = bad >= patience
    # the step budget ends the run, not the stage: a resume under a larger --max-steps continues this stage
    stage_done = stage_epoch >= stage.epochs or patience_out
    finished = budget_spent or (stage_done and last_stage)
    reason = ("max_steps reached" if budget_spent else
              f"early stopping: no validation AUPR gain for {bad} epochs" if patience_out and last_stage else
              "curriculum complete" if finished else None)
    return EpochVerdict(improved, bad, stage_done, finished, reason, patience_out, full_design)


def progress_after(progress: dict[str, Any], verdict: EpochVerdict, value: float | None,
                   last_stage: bool) -> dict[str, Any]:
    """The progress fields that change when an epoch ends (the next epoch starts from batch 0)."""
    advance = verdict.stage_done and not last_stage
    return {
        "epoch": progress["epoch"] + 1, "batch_in_epoch": 0, "finished": verdict.finished,
        "best_value": value if verdict.improved else progress["best_value"],
        "best_epoch": progress["epoch"] if verdict.improved else progress["best_epoch"],
        "best_full_design": verdict.full_design if verdict.improved else progress.get("best_full_design", True),
        "bad_epochs": 0 if advance else verdict.bad_epochs,
        "stage_index": progress["stage_index"] + (1 if advance else 0),
        "stage_epoch": 0 if verdict.stage_done else progress["stage_epoch"] + 1,
        "stop_reason": verdict.reason,
    }
