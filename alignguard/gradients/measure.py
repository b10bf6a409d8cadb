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
from alignguard.memory import return_freed_memory
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
    dtypes: dict[str, torch.dtype] = field(default_factory=dict)  # each term's dtype

    @property
    def grads(self) -> torch.Tensor:
        """(K, P), rows following `names`; a zero row where a term has no gradient or a non-finite one."""
        device = next((r.device for r in self.rows.values()), None)
        zeros = torch.zeros(self.size, dtype=torch.float32, device=device)
        return torch.stack([self.rows.get(n, zeros) for n in self.names]) if self.names else zeros[None, :0]

    def stats(self) -> GradientStats:
        keep = [n for n in self.names if self.status[n] != "nonfinite"]
        gram = gram_blocks([[self.rows.get(n)] for n in keep], 1).sum(dim=0)
        return gradient_stats_from_gram(keep, gram)


def term_gradients(terms: Mapping[str, Any], params: Sequence[torch.Tensor], batched: bool = False,
                   into: dict[str, list | None] | None = None) -> TermGradients:
    """Gradient of every term over `params` on the shared graph of one forward pass.

    By default one `autograd.grad(retain_graph=True)` per term: the first vmapped backward imports
    torch's symbolic-shape machinery (sympy), about 0.3-0.5 s, more than it saves for a handful of
    terms on a small model. With `batched`, one vmapped `autograd.grad(is_grads_batched=True)` computes all K rows at once
    (cheaper than K separate backward passes, see benchmarks/gradient_share_cost.py); where vmap
    cannot run the backward (an op or autograd.Function without a batching rule), and
    for every row that comes back zero (to tell *why* it is zero), one `autograd.grad` per term.

    With `into` (name -> one float32 running sum per parameter, on the CPU), each term's gradient
    is streamed there (see `GradientStream`) and no row is kept: a measurement over batches holds K
    sums and one parameter's gradient at a time, not K rows besides. A term non-finite in a batch
    keeps no sum from then on (`into[name] = None`): it is judged non-finite and no statistic reads it.
    """
    sizes = [p.numel() for p in params]
    names, values, status, rows, dtypes = list(terms), {}, {}, {}, {}
    candidates = []
    for name in names:
        term = terms[name]
        if not isinstance(term, torch.Tensor):
            raise LossTermTypeError(name, f"a {type(term).__name__}")
        if term.numel() != 1:
            raise LossTermTypeError(name, f"a tensor of shape {tuple(term.shape)}")
        values[name] = float(term.detach().reshape(()))
        dtypes[name] = term.dtype
        if not torch.isfinite(term.detach()).all():
            status[name] = "nonfinite"
        elif not term.requires_grad or term.grad_fn is None:
            status[name] = "detached"
        else:
            candidates.append(name)
    if into is not None:
        for name in names:
            if status.get(name) == "nonfinite":
                into[name] = None
        with GradientStream(params) as stream:
            for name in candidates:
                status[name] = _accumulate(stream, terms[name], values[name], into, name)
        return TermGradients(names, values, status, {}, sum(sizes), dtypes)
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
    return TermGradients(names, values, status, alive, sum(sizes), dtypes)


class GradientStream:
    """One term's gradient handed over one parameter at a time, as the backward pass produces it.

    `run(term, sink)` runs `backward(inputs=params)` with a post-accumulate hook on each parameter
    that passes `p.grad` to `sink(index, grad)` and clears it at once, so no more than one
    parameter's gradient exists outside the sink (autograd.grad would return all P values together).
    The tensors come from AccumulateGrad, which never hands over one aliasing another tensor, so
    the sink may keep them and add into them in place. Existing `.grad`s are restored on exit.
    """

    def __init__(self, params: Sequence[torch.Tensor]):
        self.params = list(params)
        self._sink: Callable[[int, torch.Tensor], None] | None = None

    def __enter__(self) -> "GradientStream":
        self._saved = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        self._handles = [p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(self.params)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for p, grad in zip(self.params, self._saved):
            p.grad = grad

    def _hook(self, index: int) -> Callable[[torch.Tensor], None]:
        def hook(p: torch.Tensor) -> None:
            grad, p.grad = p.grad, None
            if self._sink is not None and grad is not None:
                self._sink(index, grad)
        return hook

    def run(self, term: torch.Tensor, sink: Callable[[int, torch.Tensor], None]) -> None:
        self._sink = sink
        try:
            torch.autograd.backward(term.reshape(()), inputs=self.params, retain_graph=True)
        finally:
            self._sink = None


def _finite(row: torch.Tensor) -> bool:
    """Every element finite; one reduction, no (P,) mask unless the sum itself is not finite."""
    return bool(torch.isfinite(row.sum())) or bool(torch.isfinite(row).all())


CHUNK = 1 << 18  # elements per float64 temporary (2 MiB): small enough for malloc's heap, no mmap churn


def dot64(a: torch.Tensor, b: torch.Tensor) -> float:
    """a·b accumulated in float64, chunk by chunk: no float64 copy of either is ever whole."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.numel() <= CHUNK:
        return float(torch.dot(a.double(), b.double().to(a.device)))
    x = torch.empty(CHUNK, dtype=torch.float64, device=a.device)
    y = x if a is b else torch.empty(CHUNK, dtype=torch.float64, device=a.device)
    total = 0.0
    for start in range(0, a.numel(), CHUNK):
        n = min(CHUNK, a.numel() - start)
        x[:n].copy_(a[start:start + n])
        if y is not x:
            y[:n].copy_(b[start:start + n])
        total += float(torch.dot(x[:n], y[:n]))
    return total


def norm64(pieces: Iterable[torch.Tensor | None]) -> float:
    """|g| in float64 over a gradient given as pieces (None: zero)."""
    return sum(dot64(g, g) for g in pieces if g is not None) ** 0.5


def chunk_buffer(buffers: dict, slot: int, size: int, dtype, device) -> torch.Tensor:
    """A flat buffer of `size` elements, made once per slot, dtype and device and kept in `buffers` (a view
    of its start): converting chunk after chunk into it costs less than a fresh tensor per chunk."""
    key = (slot, dtype, device)
    if key not in buffers or buffers[key].numel() < size:
        buffers[key] = torch.empty(max(size, CHUNK), dtype=dtype, device=device)
    return buffers[key][:size]


def gram_blocks(sums: Sequence[Sequence[torch.Tensor | None] | None], count: int) -> torch.Tensor:
    """(count, K, K) float64: per parameter, the dot products of the K terms' pieces (None: zero).

    One pass: each piece is converted to float64 once per chunk, whatever K, into buffers made once
    (a fresh float64 tensor per chunk cost more than the products); shares, cosines, norms and
    per-parameter norms all follow from these blocks.
    """
    k = len(sums)
    blocks = torch.zeros(count, k, k, dtype=torch.float64)
    buffers: dict = {}
    for index in range(count):
        present = [(i, s[index].reshape(-1)) for i, s in enumerate(sums) if s is not None and s[index] is not None]
        if not present:
            continue
        size = present[0][1].numel()
        block = blocks[index]
        for start in range(0, size, CHUNK):
            n = min(CHUNK, size - start)
            chunk = []
            for slot, (i, g) in enumerate(present):
                chunk.append((i, chunk_buffer(buffers, slot, n, torch.float64, g.device).copy_(g[start:start + n])))
            for a, (i, x) in enumerate(chunk):
                for j, y in chunk[a:]:
                    value = float(torch.dot(x, y.to(x.device)))
                    block[i, j] += value
                    if i != j:
                        block[j, i] += value
    return blocks


def _single_row(term: torch.Tensor, params: Sequence[torch.Tensor], sizes: list[int]) -> torch.Tensor | None:
    grads = torch.autograd.grad(term.reshape(()), params, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return None
    row = torch.cat([(g.detach().reshape(-1).float() if g is not None else torch.zeros(n, device=p.device))
                     for g, n, p in zip(grads, sizes, params)])
    del grads  # the per-parameter pieces: the flat row is all that is kept
    return row


def _own(grad: torch.Tensor) -> torch.Tensor:
    """The gradient as a float32 CPU tensor; AccumulateGrad's own tensor when it already is one."""
    return grad.detach().to(device="cpu", dtype=torch.float32)


def _accumulate(stream: GradientStream, term: torch.Tensor, value: float, into: dict[str, list | None],
                name: str) -> TermStatus:
    """The term's status; its gradient streamed into `into[name]`, one float32 sum per parameter.

    The first batch's pieces are kept as they come (no copy); later ones are added in place. A
    non-finite piece stops the streaming and drops the term's sums for good (`into[name] = None`).
    """
    if name in into and into[name] is None:  # non-finite in an earlier batch: nothing to sum
        sums, fresh = None, False
    else:
        fresh = name not in into
        sums = into.setdefault(name, [None] * len(stream.params))
    seen = {"reached": False, "finite": True, "nonzero": False}

    def sink(index: int, grad: torch.Tensor) -> None:
        seen["reached"] = True
        if not seen["finite"]:
            return
        if not _finite(grad):
            seen["finite"] = False
            return
        if not seen["nonzero"] and bool(grad.any()):
            seen["nonzero"] = True
        if sums is not None:
            if sums[index] is None:
                sums[index] = _own(grad)
            else:
                sums[index].add_(grad.detach().to(device="cpu", dtype=torch.float32))

    stream.run(term, sink)
    if not seen["reached"]:
        status: TermStatus = "unreached"
    elif not seen["finite"]:
        into[name] = None
        return "nonfinite"
    elif seen["nonzero"]:
        return "alive"
    else:
        status = "zero_value" if value == 0.0 else "zero_gradient"
    if fresh:
        del into[name]  # nothing but zeros was added: keep no sum, as for a term never alive
    return status


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

    Each term keeps one running sum of its gradient per parameter (float32, as autograd gives it).
    Every statistic the checks read (shares, cosines, norms, per-parameter norms) follows from one
    (K, K) float64 block of dot products per parameter, computed once in one pass (`gram_blocks`);
    `release()` keeps the blocks and frees the sums (K whole-model gradients) for the phases after.
    """

    step: int
    param_names: list[str]
    param_sizes: list[int]
    names: list[str] = field(default_factory=list)  # every term seen, in first-seen order
    values: dict[str, list[float | None]] = field(default_factory=dict)  # per batch (None: absent)
    statuses: dict[str, list[TermStatus]] = field(default_factory=dict)  # per batch
    # name -> one sum per parameter (None: no gradient there) over the batches where it is alive;
    # None for a term that was non-finite in some batch
    grad_sum: dict[str, list | None] = field(default_factory=dict)
    batches: int = 0
    released: bool = False
    _cache: dict = field(default_factory=dict, repr=False)

    def add(self, batch: TermGradients) -> None:
        if self.released:
            raise RuntimeError("this measurement's gradient sums were released; measure again to add batches")
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
                if row is not None:  # a row of the unstreamed path: added parameter by parameter
                    sums = self.grad_sum.setdefault(name, [None] * len(self.param_sizes))
                    if sums is not None:
                        for index, piece in enumerate(torch.split(row.cpu().float(), self.param_sizes)):
                            sums[index] = piece.clone() if sums[index] is None else sums[index].add_(piece)
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
        """The term's gradient averaged over the batches (float64, a new flat tensor each call)."""
        if self.released:
            raise RuntimeError("this measurement's gradient sums were released; only its statistics remain")
        sums = self.grad_sum.get(name)
        pieces = [(s.reshape(-1).double() if s is not None else torch.zeros(n, dtype=torch.float64))
                  for s, n in zip(sums or [None] * len(self.param_sizes), self.param_sizes)]
        return (torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)) / max(self.batches, 1)

    def _blocks(self) -> tuple[list[str], torch.Tensor]:
        """(the terms with a sum, their (params, K, K) float64 blocks of summed-gradient dot products)."""
        if "blocks" not in self._cache:
            names = [n for n in self.names if self.grad_sum.get(n) is not None]
            blocks = gram_blocks([self.grad_sum[n] for n in names], len(self.param_sizes))
            self._cache["blocks"] = (names, blocks)
        return self._cache["blocks"]

    def release(self) -> None:
        """Compute the dot-product blocks now and free the gradient sums (statistics stay readable)."""
        self._blocks()
        self.grad_sum = {n: None for n in self.grad_sum}
        self.released = True

    def grad_norm(self, name: str) -> float:
        """|mean gradient| of the term."""
        names, blocks = self._blocks()
        if name not in names:
            return 0.0
        i = names.index(name)
        return float(blocks[:, i, i].sum().clamp(min=0).sqrt()) / max(self.batches, 1)

    def stats(self) -> GradientStats:
        """Shares, norms and cosines of the mean gradients of every finite term (computed once)."""
        if "stats" not in self._cache:
            names = [n for n in self.names if self.status(n) != "nonfinite"]
            summed, blocks = self._blocks()
            total = blocks.sum(dim=0)
            index = [summed.index(n) if n in summed else None for n in names]
            gram = torch.zeros(len(names), len(names), dtype=torch.float64)
            for a, i in enumerate(index):
                for b, j in enumerate(index):
                    if i is not None and j is not None:
                        gram[a, b] = total[i, j]
            self._cache["stats"] = gradient_stats_from_gram(names, gram / max(self.batches, 1) ** 2)
        return self._cache["stats"]

    def param_norms(self, name: str) -> dict[str, float]:
        """|mean gradient| of the term on each trainable parameter."""
        names, blocks = self._blocks()
        if name not in names:
            return {p: 0.0 for p in self.param_names}
        i, scale = names.index(name), max(self.batches, 1)
        norms = blocks[:, i, i].clamp(min=0).sqrt() / scale
        return {p: float(v) for p, v in zip(self.param_names, norms)}


def measure_steps(
    model: torch.nn.Module,
    batches: Iterable[dict],
    run_forward: Callable[[dict], Any],
    terms_at: Callable[[dict, Any, int], Mapping[str, Any]],
    steps: Sequence[int],
    seeds: Sequence[int] | None = None,
    release: bool = False,
    on_first_batch: Callable[[dict[int, tuple[TermGradients, dict]], Any], None] | None = None,
) -> dict[int, StepMeasurement]:
    """Measure every term at every step, one forward per batch, in train mode.

    `run_forward(batch)` returns forward's outputs; `terms_at(batch, outputs, step)` the loss
    terms. With `seeds`, batch i runs under `torch.manual_seed(seeds[i])` inside a forked RNG, so
    the measurement is reproducible and leaves the global RNG untouched; buffers (BatchNorm's
    running statistics) are restored afterwards, so the measurement leaves the model as it found
    it. With `release`, each
    step's statistics are computed at the end and its gradient sums freed (`StepMeasurement.release`).

    `on_first_batch({step: (TermGradients, {name: gradient per parameter})}, outputs)` is called once the
    first batch is measured and its graph freed (`outputs`: that forward's outputs, detached): the sums then hold exactly that batch's gradients,
    so a caller that needs one batch's gradients (loss.descent) reads them there instead of running
    its own forward and backward pass, and holds no copy (it must not write to them).
    """
    named = trainable_parameters(model)
    params = [p for _, p in named]
    result = {step: StepMeasurement(step, [n for n, _ in named], [p.numel() for p in params]) for step in steps}
    was_training = model.training
    buffers = [(b, b.detach().clone()) for b in model.buffers()]  # train-mode forwards move BatchNorm statistics
    model.train()
    try:
        for i, batch in enumerate(batches):
            with torch.random.fork_rng(devices=[]):
                if seeds is not None:
                    manual_seed(seeds[i])
                outputs = run_forward(batch)
                first = {}
                for step in steps:  # gradients go straight into each step's running sums
                    measured = term_gradients(terms_at(batch, outputs, step), params, into=result[step].grad_sum)
                    result[step].add(measured)
                    first[step] = (measured, result[step].grad_sum)
            seen = _detached(outputs) if i == 0 and on_first_batch is not None else None
            del outputs  # frees the retained graph before the next batch
            if i == 0 and on_first_batch is not None:
                return_freed_memory()  # the graph's pages, before the caller's phase (loss.descent: the peak)
                on_first_batch(first, seen)
            del first, seen
    finally:
        model.train(was_training)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    if release:
        for measured in result.values():
            measured.release()
    return result


def _detached(outputs: Any) -> Any:
    """forward's outputs with every tensor detached (dicts, lists and tuples rebuilt), holding no graph;
    None when they hold anything else (an object could keep the graph alive)."""
    try:
        return _detach(outputs)
    except TypeError:
        return None


def _detach(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, dict):
        return {k: _detach(v) for k, v in outputs.items()}
    if type(outputs) in (list, tuple):
        return type(outputs)(_detach(v) for v in outputs)
    if outputs is None or isinstance(outputs, (bool, int, float, str)):
        return outputs
    raise TypeError(type(outputs).__name__)
