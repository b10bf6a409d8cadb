"""The design's staged training: which parameters train in each stage, and for how many epochs.

Freezing uses `requires_grad`, so frozen parameters cost no backward work and get no optimiser
update (AdamW skips parameters whose grad is None; their moments are kept for later stages).
"""

from __future__ import annotations

from dataclasses import dataclass

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
