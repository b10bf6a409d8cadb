"""Per-term gradients of a `loss_terms` dict, measured on the real model with autograd.

One forward pass builds one graph; the K terms are then differentiated on it, by one vmapped
`torch.autograd.grad(is_grads_batched=True)` or by one `autograd.grad(term, retain_graph=True)`
per term, so measuring K terms costs one forward and K backward passes at most. The traced
graph is never used: autograd on the real model is the only place where a custom
`autograd.Function.backward` (gradient reversal) is honoured.

`term_gradients` is the single-batch primitive the trainer reuses for live monitoring;
`measure_steps` averages it over example batches and evaluates the terms at several training
steps from the same forward pass (a step changes the loss weights, never the forward).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch

from alignguard.gradients.stats import GradientStats, gradient_stats

TermStatus = Literal["alive", "detached", "unreached", "zero_value", "zero_gradient", "nonfinite", "absent"]
# When batches disagree and none is alive or non-finite, report the most telling cause first.
_DEAD_PRIORITY = ("detached", "unreached", "zero_value", "zero_gradient", "absent")


class LossTermTypeError(TypeError):
    """`loss_terms` returned something that is not a scalar tensor; `name` is the offending key."""

    def __init__(self, name: str, found: str):
        super().__init__(f"loss term '{name}' is {found}, not a scalar tensor")
        self.name, self.found = name, found


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@dataclass
class TermGradients:
    """The gradients of each term of one batch, flattened over the parameters (rows follow `names`)."""

    names: list[str]
    values: dict[str, float]
    status: dict[str, TermStatus]
    grads: torch.Tensor  # (K, P); a zero row where a term has no gradient or a non-finite one

    def stats(self) -> GradientStats:
        keep = [i for i, n in enumerate(self.names) if self.status[n] != "nonfinite"]
        return gradient_stats([self.names[i] for i in keep], self.grads[keep])


def term_gradients(terms: Mapping[str, Any], params: Sequence[torch.Tensor], batched: bool = False) -> TermGradients:
    """Gradient of every term over `params` on the shared graph of one forward pass.

    By default one `autograd.grad(retain_graph=True)` per term: the first vmapped backward imports
    torch's symbolic-shape machinery (sympy), about 0.3-0.5 s, more than it saves for a handful of
    terms on a small model. With `batched`, one vmapped `autograd.grad(is_grads_batched=True)` computes all K rows at once
    (cheaper than K separate backward passes, see benchmarks/gradient_share_cost.py); where vmap
    cannot run the backward (an op or autograd.Function without a batching rule), and
    for every row that comes back zero (to tell *why* it is zero), one `autograd.grad` per term.
    """
    sizes = [p.numel() for p in params]
    names, values, status, rows = list(terms), {}, {}, {}
    candidates = []
    for name in names:
        term = terms[name]
        if not isinstance(term, torch.Tensor):
            raise LossTermTypeError(name, f"a {type(term).__name__}")
        if term.numel() != 1:
            raise LossTermTypeError(name, f"a tensor of shape {tuple(term.shape)}")
        values[name] = float(term.detach().reshape(()))
        if not torch.isfinite(term.detach()).all():
            status[name] = "nonfinite"
        elif not term.requires_grad or term.grad_fn is None:
            status[name] = "detached"
        else:
            candidates.append(name)
    if batched and len(candidates) > 1:
        rows.update(_batched_rows({n: terms[n] for n in candidates}, params, sizes))
    for name in candidates:
        row = rows.get(name)
        if row is None or not bool((row != 0).any()):  # not measured yet, or zero: find out why
            row = _single_row(terms[name], params, sizes)
        if row is None:
            status[name] = "unreached"
        elif not bool(torch.isfinite(row).all()):
            status[name] = "nonfinite"
        elif bool((row != 0).any()):
            status[name], rows[name] = "alive", row
        else:
            status[name] = "zero_value" if values[name] == 0.0 else "zero_gradient"
    zeros = torch.zeros(sum(sizes), dtype=torch.float32, device=params[0].device if params else None)
    grads = torch.stack([rows[n] if status[n] == "alive" else zeros for n in names]) if names else zeros[None, :0]
    return TermGradients(names, values, status, grads)


def _single_row(term: torch.Tensor, params: Sequence[torch.Tensor], sizes: list[int]) -> torch.Tensor | None:
    grads = torch.autograd.grad(term.reshape(()), params, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return None
    return torch.cat([(g.detach().reshape(-1).float() if g is not None else torch.zeros(n, device=p.device))
                      for g, n, p in zip(grads, sizes, params)])


def _batched_rows(terms: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor],
                  sizes: list[int]) -> dict[str, torch.Tensor]:
    """{name: flat gradient} from one vmapped backward, or {} where vmap cannot run it."""
    import warnings

    stacked = torch.stack([t.reshape(()) for t in terms.values()])
    eye = torch.eye(len(terms), dtype=stacked.dtype, device=stacked.device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap's "performance drop" notices for ops without batching rules
            grads = torch.autograd.grad(stacked, params, grad_outputs=eye, retain_graph=True,
                                        allow_unused=True, is_grads_batched=True)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return {}
    k = len(terms)
    matrix = torch.cat([(g.detach().reshape(k, -1).float() if g is not None else torch.zeros(k, n, device=p.device))
                        for g, n, p in zip(grads, sizes, params)], dim=1)
    if not bool(torch.isfinite(matrix).all()):
        return {}  # one term's inf times another's zero cotangent is NaN in every row: measure one by one
    return dict(zip(terms, matrix))


@dataclass
class StepMeasurement:
    """Every term at one training step, over several example batches (gradients averaged)."""

    step: int
    param_names: list[str]
    param_sizes: list[int]
    names: list[str] = field(default_factory=list)  # every term seen, in first-seen order
    values: dict[str, list[float | None]] = field(default_factory=dict)  # per batch (None: absent)
    statuses: dict[str, list[TermStatus]] = field(default_factory=dict)  # per batch
    grad_sum: dict[str, torch.Tensor] = field(default_factory=dict)  # float64 sum over finite batches
    batches: int = 0

    def add(self, batch: TermGradients) -> None:
        for name in batch.names:
            if name not in self.names:
                self.names.append(name)
                self.values[name] = [None] * self.batches
                self.statuses[name] = ["absent"] * self.batches
                self.grad_sum[name] = torch.zeros(sum(self.param_sizes), dtype=torch.float64)
        for i, name in enumerate(self.names):
            if name in batch.status:
                self.values[name].append(batch.values[name])
                self.statuses[name].append(batch.status[name])
                self.grad_sum[name] += batch.grads[batch.names.index(name)].double().cpu()
            else:
                self.values[name].append(None)
                self.statuses[name].append("absent")
        self.batches += 1

    def status(self, name: str) -> TermStatus:
        """The term's verdict over all batches: non-finite in any batch wins, then alive in any."""
        seen = self.statuses[name]
        for verdict in ("nonfinite", "alive"):
            if verdict in seen:
                return verdict  # type: ignore[return-value]
        return next(s for s in _DEAD_PRIORITY if s in seen)  # type: ignore[return-value]

    def batches_with(self, name: str, status: TermStatus) -> list[int]:
        return [i for i, s in enumerate(self.statuses[name]) if s == status]

    def status_counts(self, name: str) -> Counter:
        return Counter(self.statuses[name])

    def mean_value(self, name: str) -> float | None:
        values = [v for v in self.values[name] if v is not None]
        return sum(values) / len(values) if values else None

    def mean_grad(self, name: str) -> torch.Tensor:
        return self.grad_sum[name] / max(self.batches, 1)

    def stats(self) -> GradientStats:
        """Shares, norms and cosines of the mean gradients of every finite term."""
        names = [n for n in self.names if self.status(n) != "nonfinite"]
        grads = torch.stack([self.mean_grad(n) for n in names]) if names else torch.zeros(0, 1)
        return gradient_stats(names, grads)

    def param_norms(self, name: str) -> dict[str, float]:
        """|mean gradient| of the term on each trainable parameter."""
        pieces = torch.split(self.mean_grad(name), self.param_sizes)
        return {p: float(piece.norm()) for p, piece in zip(self.param_names, pieces)}


def measure_steps(
    model: torch.nn.Module,
    batches: Iterable[dict],
    run_forward: Callable[[dict], Any],
    terms_at: Callable[[dict, Any, int], Mapping[str, Any]],
    steps: Sequence[int],
    seeds: Sequence[int] | None = None,
) -> dict[int, StepMeasurement]:
    """Measure every term at every step, one forward per batch, in train mode.

    `run_forward(batch)` returns forward's outputs; `terms_at(batch, outputs, step)` the loss
    terms. With `seeds`, batch i runs under `torch.manual_seed(seeds[i])` inside a forked RNG, so
    the measurement is reproducible and leaves the global RNG untouched.
    """
    named = trainable_parameters(model)
    params = [p for _, p in named]
    result = {step: StepMeasurement(step, [n for n, _ in named], [p.numel() for p in params]) for step in steps}
    was_training = model.training
    model.train()
    try:
        for i, batch in enumerate(batches):
            with torch.random.fork_rng(devices=[]):
                if seeds is not None:
                    torch.manual_seed(seeds[i])
                outputs = run_forward(batch)
                for step in steps:
                    result[step].add(term_gradients(terms_at(batch, outputs, step), params))
            del outputs  # frees the retained graph before the next batch
    finally:
        model.train(was_training)
    return result
