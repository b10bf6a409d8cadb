"""probe.batch_independence: each example's symbols depend on that example's inputs only.

A temperature shared by the batch (T replaced by its batch mean), a normalisation over the batch
left in eval, or any other batch statistic makes one cell line's M, B, T depend on which other
cell lines share its batch. Structural rules cannot see it (a batch mean still depends on c), so
the probe runs the real model in eval mode (deterministic, fixed seed):

* value form: the first half of the rows, and a permutation of them, give the same symbols row
  by row as the full batch (within `tolerance`: float rounding differs with the batch size);
* gradient form: ∂symbol_i/∂input_j is exactly zero for every i ≠ j, over every floating-point
  input, in one vmapped backward per symbol. Autograd zeros are exact, so a batch statistic fails
  however small it is at initialisation; BatchNorm in eval (running statistics) passes.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.probes.support import (
    max_abs_diff,
    probe_inputs,
    probe_seed,
    runner,
    symbol_where,
    user_forward,
)
from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.results import CheckResult, failed, passed

ID = "probe.batch_independence"


def _fix(name: str) -> str:
    return (f"compute {name} from each example's own inputs: no mean/std/sum/softmax over the batch dimension "
            "(dim 0) on its path; in eval, BatchNorm must use its running statistics (model.eval()), or use a "
            "per-example normalisation (LayerNorm)")


class BatchIndependenceProbeCheck(Check):
    ids = (ID,)
    explanations = {
        ID: (
            "Each example's symbols (M, B, T, logit) must depend on that example's inputs only: a cell line's "
            "temperature may not change with the other cell lines that share its batch. In eval mode with a "
            "fixed seed, the first half of the probe rows and a permutation of them must give the same values "
            "row by row as the full batch (|Δ| <= `tolerance`·max(1, |value|)); with `gradient: true` (default) "
            "∂symbol_i/∂input_j must be exactly 0 for every i ≠ j over every floating-point input, so a batch "
            "mean fails however small it is at initialisation. BatchNorm in eval (running statistics) passes; "
            "train mode is not probed, where batch statistics are legitimate. A symbol that is random in eval "
            "(it changes with the seed) cannot be compared row by row; the gradient form alone judges it. It "
            "probes the example rows only. "
            "Fix: remove the batch statistic (mean/std/softmax over dim 0) from the symbol's path, or normalise "
            "per example (LayerNorm)."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.batch_independence is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        import torch

        probe = context.spec.probes.batch_independence
        inputs = probe_inputs(context)
        rows = _batch_rows(inputs)
        if rows is None or rows < 2:
            for name in probe.symbols:
                yield failed(ID, f"symbol {name}", f"{name} row i depends on example i's inputs only",
                             "matched nothing: no forward input has a batch dimension of at least 2 rows",
                             fix="pass batched tensors to forward (first dimension = examples)")
            return
        with user_forward(context):
            views = self._views(context, inputs, rows)
            with torch.no_grad():  # the value form compares values: no autograd graph through the model
                values, broken = self._read(context, probe.symbols, inputs)
                readable = [n for n in probe.symbols if n not in broken]
                runs = {label: self._read(context, readable, _take(inputs, index, rows))[0]
                        for label, index in views.items()}
                reseeded = self._read(context, readable, inputs, offset=1)[0]
            jacobians = self._cross_rows(context, probe.symbols, inputs, rows, broken) if probe.gradient else {}
        for name in probe.symbols:
            element, where = f"symbol {name}", symbol_where(context, name, inputs)
            if name in broken:
                yield failed(ID, element, f"{name} readable by running the model", broken[name],
                             fix=f"bind {name} to a forward output or a module output that exists", where=where)
                continue
            if max_abs_diff(values[name], reseeded[name]) > 0:
                yield self._stochastic(context, name, element, probe.gradient, where)
            else:
                yield self._judge_values(name, element, probe.tolerance, values[name], views, runs, rows, where)
            if probe.gradient:
                yield self._judge_gradient(name, element, jacobians[name], where)

    # ---- running ------------------------------------------------------------------------
    def _read(self, context, names, inputs, offset: int = 0) -> tuple[dict, dict]:
        """({symbol: value} for eval forward on `inputs`, {symbol: why unreadable})."""
        from alignguard.probes.runtime import SymbolError

        seed = probe_seed(context) + offset
        try:
            run = runner(context).run(inputs, seed=seed, observe=names)
            return {n: run[n] for n in names}, {}
        except SymbolError:  # find out which binding is the bad one; the others still get judged
            values, broken = {}, {}
            for name in names:
                try:
                    values[name] = runner(context).run(inputs, seed=seed, observe=[name])[name]
                except SymbolError as exc:
                    broken[name] = str(exc)
            return values, broken

    def _views(self, context, inputs, rows: int) -> dict:
        """Row selections whose symbols must equal the full batch's rows: a strict subset, a permutation."""
        import torch

        generator = torch.Generator().manual_seed(probe_seed(context))
        permutation = torch.randperm(rows, generator=generator)
        if bool((permutation == torch.arange(rows)).all()):
            permutation = permutation.flip(0)
        return {"first half": torch.arange(max(rows // 2, 1)), "permuted": permutation}

    def _cross_rows(self, context, names, inputs, rows: int, broken: dict) -> dict:
        """{symbol: {input: (n, n) matrix of max |∂symbol_i/∂input_j|}} (diagonal zeroed), or a reason string."""
        import torch

        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()
                  if _batched(v, rows) and v.is_floating_point()}
        readable = [n for n in names if n not in broken]
        if not leaves:
            reason = ("no floating-point batched input to differentiate (integer ids have no gradient): the "
                      "gradient form cannot run")
            return {n: reason for n in readable}
        with torch.enable_grad():
            run = runner(context).run({**inputs, **leaves}, seed=probe_seed(context), observe=readable,
                                      param_grads=False)
            per_row = [n for n in readable if run[n].dim() > 0 and len(run[n]) == rows and run[n].requires_grad]
            if per_row and not _any_cross_rows([run[n] for n in per_row], list(leaves.values()), rows):
                zeros = {k: torch.zeros(rows, rows, dtype=torch.float64) for k in leaves}
                return {n: (zeros if n in per_row else _cross_matrix(run[n], leaves, rows)) for n in readable}
            return {name: _cross_matrix(run[name], leaves, rows) for name in readable}  # which symbol, which rows

    # ---- judging ------------------------------------------------------------------------
    def _stochastic(self, context, name, element, gradient: bool, where) -> CheckResult:
        """Rows of a symbol that is random in eval differ by position, not by batch: only the gradient judges."""
        seed = probe_seed(context)
        expected = f"{name} row by row the same for the full batch, its first half and a permutation (eval)"
        found = (f"not compared: {name} changes between two eval passes with seeds {seed} and {seed + 1} (stochastic "
                 "in eval), so a row's value depends on the noise drawn at its position")
        details = {"form": "value", "stochastic": True}
        if gradient:
            return passed(ID, element, expected, found + "; the gradient form judges it", where=where, details=details)
        return failed(ID, element, expected, found + ", and `gradient: false` leaves nothing to judge it",
                      fix="set `probes.batch_independence.gradient: true`, or make eval deterministic (z = μ)",
                      where=where, details=details)

    def _judge_values(self, name, element, tolerance, full, views, runs, rows, where) -> CheckResult:
        import torch

        expected = (f"{name} row by row the same for the full batch, its first half and a permutation "
                    f"(eval, |Δ| <= {tolerance:g}·max(1, |{name}|))")
        diffs, bad = {}, {}
        for label, index in views.items():
            part = runs[label][name]
            reference = full if full.dim() == 0 else _rows_of(full, index, rows)
            if reference is None or part.shape != reference.shape:
                return failed(ID, element, expected,
                              f"{name} has shape {tuple(full.shape)} for {rows} examples and "
                              f"{tuple(part.shape)} for {len(index)}: it is not one value per example",
                              fix=f"return {name} with the batch as its first dimension", where=where,
                              details={"form": "value", "shapes": [list(full.shape), list(part.shape)]})
            a, b = part.detach().double(), reference.detach().double()
            close = torch.isclose(a, b, rtol=tolerance, atol=tolerance, equal_nan=True)
            finite = torch.isfinite(a) & torch.isfinite(b)
            diffs[label] = float((a - b)[finite].abs().max()) if bool(finite.any()) else 0.0
            if not bool(close.all()):
                bad[label] = int((~close).reshape(len(close), -1).any(1).sum()) if close.dim() else 1
        found = ", ".join(f"{label}: max |Δ{name}| = {d:.3g}" for label, d in diffs.items())
        details = {"form": "value", "max_abs_diff": diffs, "rows": rows}
        if not bad:
            return passed(ID, element, expected, found, where=where, details=details)
        changed = "; ".join(f"{count} row(s) change in the {label} batch" for label, count in bad.items())
        return failed(ID, element, expected,
                      f"{name} of an example changes with the other examples in its batch ({found}; {changed}): "
                      "a batch statistic leaks across examples", fix=_fix(name), where=where, details=details)

    def _judge_gradient(self, name, element, cross, where) -> CheckResult:
        expected = f"∂{name}_i/∂input_j exactly zero for every pair of examples i ≠ j (eval)"
        if isinstance(cross, str):
            return failed(ID, element, expected, cross,
                          fix="set `probes.batch_independence.gradient: false` (the value form still runs) or pass "
                          "floating-point inputs", where=where, details={"form": "gradient"})
        worst = {k: float(m.max()) for k, m in cross.items()}
        found = ", ".join(f"max |∂{name}_i/∂{k}_j| = {v:.3g}" for k, v in worst.items()) or "no input reaches it"
        details = {"form": "gradient", "max_cross_grad": worst}
        leaks = {k: m for k, m in cross.items() if bool((m != 0).any())}
        if not leaks:
            return passed(ID, element, expected, f"{found} (i ≠ j)", where=where, details=details)
        key, matrix = max(leaks.items(), key=lambda item: float(item[1].nan_to_num(float("inf")).max()))
        pairs = (matrix != 0).nonzero()
        i, j = (int(v) for v in pairs[0])
        shared = int(pairs[:, 0].unique().numel())
        return failed(ID, element, expected,
                      f"{name} of example {i} depends on {key} of example {j} (|∂{name}_{i}/∂{key}_{j}| = "
                      f"{float(matrix[i, j]):.3g}); {shared}/{len(matrix)} examples depend on other examples' "
                      f"inputs ({found}): a batch statistic (mean, std, softmax over the batch) is on {name}'s path",
                      fix=_fix(name), where=where, details={**details, "pairs": int(len(pairs))})


def _batch_rows(inputs: dict) -> int | None:
    import torch

    return next((len(v) for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() > 0), None)


def _batched(value, rows: int) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.dim() > 0 and len(value) == rows


def _take(inputs: dict, index, rows: int) -> dict:
    return {k: (v[index] if _batched(v, rows) else v) for k, v in inputs.items()}


def _rows_of(value, index, rows: int):
    return value[index] if value.dim() > 0 and len(value) == rows else None


def _cross_matrix(value, leaves: dict, rows: int):
    """{input: (n, n) max |∂value_i/∂input_j|, diagonal zeroed}, or why it cannot be measured.
    A 0-d value is every example's value, so it may depend on no example's inputs at all."""
    import torch

    if not value.requires_grad:
        return {k: torch.zeros(rows, rows) for k in leaves}
    if value.dim() == 0:
        grads = torch.autograd.grad(value, list(leaves.values()), retain_graph=True, allow_unused=True)
        return {k: (torch.zeros(rows, rows) if g is None else
                    g.detach().double().abs().reshape(rows, -1).amax(1)[None, :].expand(rows, rows)
                    * (1 - torch.eye(rows, dtype=torch.float64)))
                for k, g in zip(leaves, grads)}
    if len(value) != rows:  # judged as a reason string
        return f"shape {tuple(value.shape)} for {rows} examples: it is not one value per example"
    grads = _row_jacobian(value, list(leaves.values()), rows)
    off = 1 - torch.eye(rows, dtype=torch.float64)
    return {k: (torch.zeros(rows, rows) if g is None else
                g.detach().double().abs().reshape(rows, rows, -1).amax(2).nan_to_num(float("inf")) * off)
            for k, g in zip(leaves, grads)}


def _any_cross_rows(values: list, leaves: list, rows: int) -> bool:
    """Whether any row of any value depends on another row's inputs, in one vmapped backward.

    Cotangent k covers the rows S_k whose bit k//2 equals k%2; the gradient on the rows outside
    S_k must be exactly zero. Two different rows differ in some bit, so every pair (i, j) has an
    S_k holding i and not j: 2·ceil(log2 n) cotangents test all n(n-1) pairs of every symbol at
    the cost of that many backward passes, not n per symbol. Random weights within the rows keep
    terms from cancelling to an exact zero.
    """
    import torch

    bits = max((rows - 1).bit_length(), 1)
    index = torch.arange(rows)
    sides = torch.stack([((index >> (k // 2)) & 1) == (k % 2) for k in range(2 * bits)])  # (K, rows)
    generator = torch.Generator().manual_seed(0)
    flat = torch.cat([v.reshape(rows, -1) for v in values], dim=1)  # (rows, features)
    weights = torch.rand(flat.shape, generator=generator, dtype=torch.float64).add_(0.5).to(flat.dtype)
    cotangents = sides[:, :, None].to(flat.dtype) * weights.to(flat.device)
    # One plain backward of the scalar <flat, c> per cotangent c (the same vector-Jacobian product):
    # vmap, or even an explicit `grad_outputs`, makes torch import its symbolic-shape machinery
    # (sympy, ~0.3-0.5 s), more than these few small backward passes cost.
    grads = [torch.stack(parts) if all(p is not None for p in parts) else None
             for parts in zip(*(torch.autograd.grad((flat * c).sum(), leaves, retain_graph=True,
                                                    allow_unused=True) for c in cotangents))]
    outside = ~sides
    for grad in grads:
        if grad is not None and bool((grad.reshape(len(sides), rows, -1)[outside] != 0).any()):
            return True
    return False


def _row_jacobian(value, leaves: list, rows: int) -> list:
    """∂value_i/∂leaf for every row i at once: (rows, *leaf.shape) per leaf (None where unused).

    One vmapped backward with one-hot row cotangents (random weights within a row, so features
    cannot cancel); one backward per row where vmap cannot run the user's backward.
    """
    import warnings

    import torch

    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(value.shape[1:], generator=generator, dtype=torch.float64).add_(0.5).to(value.dtype)
    eye = torch.eye(rows, dtype=value.dtype, device=value.device).reshape(rows, rows, *[1] * (value.dim() - 1))
    cotangents = eye * weights.to(value.device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(torch.autograd.grad(value, leaves, grad_outputs=cotangents, retain_graph=True,
                                            allow_unused=True, is_grads_batched=True))
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        per_row = [torch.autograd.grad(value, leaves, grad_outputs=cotangents[i], retain_graph=True,
                                       allow_unused=True) for i in range(rows)]
        return [None if all(r[k] is None for r in per_row) else
                torch.stack([r[k] if r[k] is not None else torch.zeros_like(leaf) for r in per_row])
                for k, leaf in enumerate(leaves)]
