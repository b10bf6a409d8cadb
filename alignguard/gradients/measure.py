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

from alignguard.gradients.stats import GradientStats, gradient_stats_from_gram
from alignguard.seeding import manual_seed

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
    """The gradients of each term of one batch, flattened over the parameters.

    Only alive terms hold a row (`rows`); `grads` stacks them, with a zero row for the others, on
    demand: a caller that reads a few rows never pays for the (K, P) matrix.
    """

    names: list[str]
    values: dict[str, float]
    status: dict[str, TermStatus]
    rows: dict[str, torch.Tensor]  # name -> (P,) gradient, alive terms only
    size: int = 0  # P

    @property
    def grads(self) -> torch.Tensor:
        """(K, P), rows following `names`; a zero row where a term has no gradient or a non-finite one."""
        device = next((r.device for r in self.rows.values()), None)
        zeros = torch.zeros(self.size, dtype=torch.float32, device=device)
        return torch.stack([self.rows.get(n, zeros) for n in self.names]) if self.names else zeros[None, :0]

    def stats(self) -> GradientStats:
        keep = [n for n in self.names if self.status[n] != "nonfinite"]
        gram = _gram([self.rows.get(n) for n in keep])
        return gradient_stats_from_gram(keep, gram)


def term_gradients(terms: Mapping[str, Any], params: Sequence[torch.Tensor], batched: bool = False,
                   into: dict[str, torch.Tensor] | None = None) -> TermGradients:
    """Gradient of every term over `params` on the shared graph of one forward pass.

    By default one `autograd.grad(retain_graph=True)` per term: the first vmapped backward imports
    torch's symbolic-shape machinery (sympy), about 0.3-0.5 s, more than it saves for a handful of
    terms on a small model. With `batched`, one vmapped `autograd.grad(is_grads_batched=True)` computes all K rows at once
    (cheaper than K separate backward passes, see benchmarks/gradient_share_cost.py); where vmap
    cannot run the backward (an op or autograd.Function without a batching rule), and
    for every row that comes back zero (to tell *why* it is zero), one `autograd.grad` per term.

    With `into` (name -> float32 running sum on the CPU, created on first use), each alive term's
    gradient is added there piece by piece as autograd returns it, and no flat row is kept: a
    measurement over batches then holds K sums and one term's pieces at a time, not K rows besides
    (on the 52 M-parameter DeepSEA CNN, 0.6 GB less).
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
    if into is not None:
        for name in candidates:
            status[name] = _accumulate(terms[name], values[name], params, sizes, into, name)
        return TermGradients(names, values, status, {}, sum(sizes))
    if batched and len(candidates) > 1:
        rows.update(_batched_rows({n: terms[n] for n in candidates}, params, sizes))
    alive: dict[str, torch.Tensor] = {}
    for name in candidates:
        row = rows.pop(name, None)
        if row is None or not bool(row.any()):  # not measured yet, or zero: find out why
            row = _single_row(terms[name], params, sizes)
        if row is None:
            status[name] = "unreached"
        elif not _finite(row):
            status[name] = "nonfinite"
        elif bool(row.any()):
            status[name], alive[name] = "alive", row
        else:
            status[name] = "zero_value" if values[name] == 0.0 else "zero_gradient"
    return TermGradients(names, values, status, alive, sum(sizes))


def _finite(row: torch.Tensor) -> bool:
    """Every element finite; one reduction, no (P,) mask unless the sum itself is not finite."""
    return bool(torch.isfinite(row.sum())) or bool(torch.isfinite(row).all())


def _gram(rows: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """(K, K) float64 dot products of the rows (None: a zero row), without stacking them."""
    k = len(rows)
    gram = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(i, k):
            if rows[i] is not None and rows[j] is not None:
                gram[i, j] = gram[j, i] = float(_dot(rows[i], rows[j]))
    return gram


def _dot(a: torch.Tensor, b: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
    """a·b accumulated in float64, in chunks so no full float64 copy of either is made."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, a.numel(), chunk):
        total += (a[start:start + chunk].double() @ b[start:start + chunk].double()).cpu()
    return total


def _single_row(term: torch.Tensor, params: Sequence[torch.Tensor], sizes: list[int]) -> torch.Tensor | None:
    grads = torch.autograd.grad(term.reshape(()), params, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return None
    row = torch.cat([(g.detach().reshape(-1).float() if g is not None else torch.zeros(n, device=p.device))
                     for g, n, p in zip(grads, sizes, params)])
    del grads  # the per-parameter pieces: the flat row is all that is kept
    return row


def _accumulate(term: torch.Tensor, value: float, params: Sequence[torch.Tensor], sizes: list[int],
                into: dict[str, torch.Tensor], name: str) -> TermStatus:
    """The term's status; when alive, its gradient added into `into[name]` one parameter at a time."""
    grads = torch.autograd.grad(term.reshape(()), params, retain_graph=True, allow_unused=True)
    pieces = [(g, n) for g, n in zip(grads, sizes)]
    if all(g is None for g, _ in pieces):
        return "unreached"
    if not all(_finite(g) for g, _ in pieces if g is not None):
        return "nonfinite"
    if not any(bool(g.any()) for g, _ in pieces if g is not None):
        return "zero_value" if value == 0.0 else "zero_gradient"
    total = into.get(name)
    if total is None:
        total = into[name] = torch.zeros(sum(sizes), dtype=torch.float32)
    offset = 0
    for g, n in pieces:
        if g is not None:
            total[offset:offset + n].add_(g.detach().reshape(-1).to(device="cpu", dtype=torch.float32))
        offset += n
    return "alive"


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
    """Every term at one training step, over several example batches (gradients averaged).

    Each term keeps one running sum of its gradient (float32, as autograd gives it; the dot
    products that shares and cosines are made of are taken in float64); means and statistics are
    computed once and reused by every check that reads them.
    """

    step: int
    param_names: list[str]
    param_sizes: list[int]
    names: list[str] = field(default_factory=list)  # every term seen, in first-seen order
    values: dict[str, list[float | None]] = field(default_factory=dict)  # per batch (None: absent)
    statuses: dict[str, list[TermStatus]] = field(default_factory=dict)  # per batch
    grad_sum: dict[str, torch.Tensor] = field(default_factory=dict)  # sum over the batches where it is alive
    batches: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def add(self, batch: TermGradients) -> None:
        self._cache.clear()
        for name in batch.names:
            if name not in self.names:
                self.names.append(name)
                self.values[name] = [None] * self.batches
                self.statuses[name] = ["absent"] * self.batches
        for name in self.names:
            if name in batch.status:
                self.values[name].append(batch.values[name])
                self.statuses[name].append(batch.status[name])
                row = batch.rows.get(name)
                if row is not None:
                    row = row.cpu()
                    if name in self.grad_sum:
                        self.grad_sum[name].add_(row)
                    else:
                        self.grad_sum[name] = row.clone() if row.dtype == torch.float32 else row.float()
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
        """The term's gradient averaged over the batches (float64, a new tensor each call)."""
        total = self.grad_sum.get(name)
        if total is None:
            return torch.zeros(sum(self.param_sizes), dtype=torch.float64)
        return total.double() / max(self.batches, 1)

    def grad_norm(self, name: str) -> float:
        """|mean gradient| of the term."""
        total = self.grad_sum.get(name)
        return float(_dot(total, total).sqrt()) / max(self.batches, 1) if total is not None else 0.0

    def stats(self) -> GradientStats:
        """Shares, norms and cosines of the mean gradients of every finite term (computed once)."""
        if "stats" not in self._cache:
            names = [n for n in self.names if self.status(n) != "nonfinite"]
            gram = _gram([self.grad_sum.get(n) for n in names]) / max(self.batches, 1) ** 2
            self._cache["stats"] = gradient_stats_from_gram(names, gram)
        return self._cache["stats"]

    def param_norms(self, name: str) -> dict[str, float]:
        """|mean gradient| of the term on each trainable parameter (computed once per term)."""
        key = ("norms", name)
        if key not in self._cache:
            total = self.grad_sum.get(name)
            if total is None:
                self._cache[key] = {p: 0.0 for p in self.param_names}
            else:
                pieces = torch.split(total, self.param_sizes)
                scale = max(self.batches, 1)
                self._cache[key] = {p: float(_dot(piece, piece).sqrt()) / scale
                                    for p, piece in zip(self.param_names, pieces)}
        return self._cache[key]


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
                    manual_seed(seeds[i])
                outputs = run_forward(batch)
                for step in steps:  # gradients go straight into each step's running sums
                    result[step].add(term_gradients(terms_at(batch, outputs, step), params,
                                                    into=result[step].grad_sum))
            del outputs  # frees the retained graph before the next batch
    finally:
        model.train(was_training)
    return result
