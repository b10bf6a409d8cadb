"""probe.positivity: M(c) and T(c) stay positive for any cell context, including extreme ones.

The design needs M > 0 (concentration scales affinity, it never flips its sign) and T > 0 (a
temperature). The probe runs the real model over `trials` contexts: observed ones, typical
draws, and draws up to `scale` standard deviations out (unseen cell lines are exactly that).
Sampling misses a head that is merely *near* positive at initialisation (an identity head with
small weights), so it then searches: projected sign-gradient descent on the context inputs,
minimising the symbol within the same box, from the lowest-valued draws.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.probes.support import probe_inputs, probe_seed, ran_on, runner, symbol_where, user_forward
from alignguard.results import CheckResult, failed, passed


class PositivityProbeCheck(Check):
    ids = ("probe.positivity",)
    explanations = {
        "probe.positivity": (
            "Runs the real model in eval mode over `trials` cell contexts (every input with role "
            "`context`): observed rows, Gaussian draws around them, draws up to `scale` standard "
            "deviations out and the corners of that box. Then an adversarial search: from the "
            "`search_starts` lowest draws, `search_steps` projected sign-gradient (PGD) steps on the "
            "floating-point context inputs minimise each symbol, staying within `scale` standard "
            "deviations of the observed mean per feature. Each listed symbol (M, T) must be finite and "
            "strictly positive at every sampled and searched context; a failure names the symbol, its "
            "value and the worst context found. It searches locally, so it cannot prove positivity for "
            "every input (a structural softplus/exp does). Fix: produce the symbol through softplus/exp "
            "plus a small floor (softplus underflows to exactly 0 in float32)."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.positivity is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        import torch

        from alignguard.probes.runtime import SymbolError

        probe = context.spec.probes.positivity
        inputs = probe_inputs(context)
        names = [n for n in context.spec.input_with_role("context") if n in inputs]
        if not names:
            for symbol in probe.symbols:
                yield failed("probe.positivity", f"symbol {symbol}", f"{symbol} > 0 for every context",
                             "matched nothing: no forward input has role `context` in the spec",
                             fix="mark the cell-context input with `role: context` under `inputs`")
            return
        contexts, batches = self._contexts(context, probe, inputs, names)
        failures: dict[str, str] = {}
        with torch.no_grad(), user_forward(context):
            try:  # every symbol at once; only when that fails, one whole run per symbol says which binding
                ran, runs = self._sample(context, probe.symbols, inputs, names, batches)
            except SymbolError:
                for symbol in probe.symbols:
                    try:
                        runner(context).run(batches[0], seed=probe_seed(context), observe=[symbol])
                    except SymbolError as exc:
                        failures[symbol] = str(exc)
                ran, runs = self._sample(context, [s for s in probe.symbols if s not in failures], inputs, names,
                                         batches)
            readable = [s for s in probe.symbols if s not in failures]
            values: dict[str, list] = {s: [] for s in readable}
            for batch, run in zip(batches, runs):
                rows = len(batch[names[0]])
                for symbol in readable:
                    value = run[symbol].detach().double()
                    # A context-free symbol (a global temperature) is one value for every row.
                    value = value.reshape(1, 1).expand(rows, 1) if value.dim() == 0 else value.reshape(len(value), -1)
                    values[symbol].append(value)
        sampled = {s: torch.cat(values[s]) for s in readable}
        searched = self._search(context, probe, inputs, names, contexts, sampled) if readable else {}
        for symbol in probe.symbols:
            element, expected = f"symbol {symbol}", f"{symbol} > 0 and finite for {probe.trials} contexts up to {probe.scale:g} std devs out"
            if symbol in searched:
                expected += f" and at the contexts a {probe.search_steps}-step descent on {symbol} reaches"
            where = symbol_where(context, symbol, inputs)
            if symbol in failures:
                yield failed("probe.positivity", element, expected, failures[symbol],
                             fix=f"bind {symbol} to a forward output or module output that exists", where=where)
                continue
            result = self._judge(symbol, element, expected, sampled[symbol], contexts, inputs, names, where,
                                 searched.get(symbol))
            yield result.with_(details={**result.details, "ran_on": ran})

    def _sample(self, context, symbols, inputs, names, batches):
        """(what ran, one run per batch) of the symbols. The plan comes first, on the example inputs: a
        discovery recording of them that an earlier check kept serves it, and the batches (the example
        rows with drawn contexts) then run on the validated slice without recording a forward of their own."""
        if not symbols:
            return "whole model", [{} for _ in batches]
        ran = ran_on(context, symbols, inputs, vary=names)  # the contexts feed only the slice that reads them
        return ran, [runner(context).run(batch, seed=probe_seed(context), observe=symbols, vary=names)
                     for batch in batches]

    def _contexts(self, context, probe, inputs, names):
        """The drawn contexts per input, and forward inputs in chunks of at most the batch size."""
        import torch

        from alignguard.probes.contexts import draw_contexts

        generator = torch.Generator().manual_seed(probe_seed(context))
        contexts = {n: draw_contexts(inputs[n], probe.trials, probe.scale, generator) for n in names}
        size = max(len(inputs[names[0]]), 1)
        rows = torch.arange(probe.trials) % size
        batches = []
        for start in range(0, probe.trials, size):
            chunk = rows[start:start + size]
            batch = {k: (v[chunk] if isinstance(v, torch.Tensor) and len(v) == size else v) for k, v in inputs.items()}
            batch.update({n: contexts[n][start:start + size] for n in names})
            batches.append(batch)
        return contexts, batches

    def _search(self, context, probe, inputs, names, contexts, sampled) -> dict:
        """{symbol: (worst value per start row, {input: context rows}, forwards run)} after the descent.

        One batch holds every symbol's starts (its `search_starts` lowest draws); each step moves
        every floating-point context input by -α·sign(∂ symbol / ∂ z) in standardised units z, and
        projects back into the box |z| <= scale. α decays linearly from 4·scale/steps, so the steps
        add up to one crossing of the box. The lowest value each row reaches is kept.
        """
        import torch

        floats = [n for n in names if contexts[n].is_floating_point()]
        symbols = [s for s in sampled if sampled[s].numel()]
        if probe.search_steps == 0 or not floats or not symbols:
            return {}
        size = max(len(inputs[names[0]]), 1)
        starts = {s: _lowest(sampled[s], probe.search_starts) for s in symbols}
        index = torch.cat(list(starts.values()))
        groups = dict(zip(symbols, torch.arange(len(index)).split([len(v) for v in starts.values()])))
        rows = index % size
        base = {k: (v[rows] if isinstance(v, torch.Tensor) and v.dim() > 0 and len(v) == size else v)
                for k, v in inputs.items()}
        base.update({n: contexts[n][index] for n in names})
        boxes = {n: _Standardised(inputs[n], probe.scale) for n in floats}
        z = {n: boxes[n].to_z(base[n]) for n in floats}
        best = {s: torch.full((len(groups[s]),), float("inf"), dtype=torch.float64) for s in symbols}
        found = {s: {n: base[n][groups[s]].clone() for n in names} for s in symbols}
        seed = probe_seed(context)
        with torch.enable_grad(), user_forward(context):
            for step in range(probe.search_steps + 1):
                leaves = {n: boxes[n].from_z(z[n], base[n].dtype).requires_grad_(True) for n in floats}
                run = runner(context).run({**base, **leaves}, seed=seed, observe=symbols, vary=names,
                                          param_grads=False)
                objective = 0.0
                for s in symbols:
                    value = _per_row(run[s], len(index))[groups[s]]
                    worst = _row_worst(value.detach().double())
                    better = worst < best[s]
                    best[s] = torch.where(better, worst, best[s])
                    for n in names:
                        current = leaves[n].detach() if n in leaves else base[n]
                        found[s][n][better] = current[groups[s]][better]
                    objective = objective + value.sum()
                if step == probe.search_steps or not getattr(objective, "requires_grad", False):
                    break
                grads = torch.autograd.grad(objective, list(leaves.values()), allow_unused=True)
                alpha = 4.0 * probe.scale / probe.search_steps * (1.0 - step / probe.search_steps)
                moved = False
                for n, grad in zip(leaves, grads):
                    if grad is not None:
                        new = boxes[n].step(z[n], grad, alpha)
                        moved = moved or not torch.equal(new, z[n])
                        z[n] = new
                if not moved:  # a fixed point (every row held at the box or at a zero gradient): it stays there
                    break
        return {s: (best[s], found[s], step + 1) for s in symbols}

    def _judge(self, symbol, element, expected, values, contexts, inputs, names, where, searched=None) -> CheckResult:
        import torch

        from alignguard.probes.contexts import describe_context

        bad = ~torch.isfinite(values) | (values <= 0)
        row_bad = bad.any(dim=1)
        finite = values[torch.isfinite(values)]
        low = float(finite.min()) if finite.numel() else float("nan")
        details = {"min": low, "violations": int(row_bad.sum()), "trials": len(values)}
        search_text = ""
        if searched is not None:
            best, found, forwards = searched
            search_bad = ~(best > 0)  # a non-finite value was recorded as -inf
            lowest = int(best.argmin())
            details.update(search_min=float(best[lowest]), search_violations=int(search_bad.sum()),
                           search_starts=len(best), search_forwards=forwards)
            search_text = (f"; descent from the {len(best)} lowest draws reached min {symbol} = "
                           f"{float(best[lowest]):.3g}")
        fix = (f"produce {symbol} as softplus(.) + a small floor (or exp of a clamped value) so it stays "
               "positive and finite for any context")
        if bool(row_bad.any()):
            first = int(row_bad.nonzero()[0])
            value = values[first][bad[first]][0].item()
            at = "; ".join(f"{n}: {describe_context(contexts[n][first], inputs[n])}" for n in names)
            kind = "not finite" if value != value or abs(value) == float("inf") else "not positive"
            return failed("probe.positivity", element, expected,
                          f"{symbol} = {value:.3g} ({kind}) in {int(row_bad.sum())}/{len(values)} contexts, e.g. "
                          f"{at}{search_text}", fix=fix, where=where, details=details)
        if searched is not None and details["search_violations"]:
            at = "; ".join(f"{n}: {describe_context(found[n][lowest], inputs[n])}" for n in names)
            value = float(best[lowest])
            kind = "not finite" if value != value or abs(value) == float("inf") else "not positive"
            return failed("probe.positivity", element, expected,
                          f"{symbol} = {value:.3g} ({kind}) at a context found by gradient descent on {symbol} "
                          f"({details['search_violations']}/{len(best)} searches end below 0; every sampled "
                          f"context gave {symbol} >= {low:.3g}): {at}",
                          fix=fix, where=where, details=details)
        return passed("probe.positivity", element, expected,
                      f"min {symbol} = {low:.3g} over {len(values)} contexts{search_text}", where=where,
                      details=details)


class _Standardised:
    """A context input in standard-deviation units of the observed rows, boxed to |z| <= scale."""

    def __init__(self, observed, scale: float):
        import torch

        flat = observed.reshape(len(observed), -1).double()
        self.mean = flat.mean(0)
        std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.zeros_like(self.mean)
        self.std = std.where(std > 0, self.mean.abs().clamp(min=1.0))  # as draw_contexts: constants still vary
        self.scale, self.shape = scale, observed.shape[1:]

    def to_z(self, rows):
        return ((rows.reshape(len(rows), -1).double() - self.mean) / self.std).clamp(-self.scale, self.scale)

    def from_z(self, z, dtype):
        return (self.mean + self.std * z).to(dtype).reshape(len(z), *self.shape)

    def step(self, z, grad, alpha: float):
        direction = (grad.detach().reshape(len(z), -1).double() * self.std).nan_to_num(0.0).sign()
        return (z - alpha * direction).clamp(-self.scale, self.scale)


def _row_worst(values):
    """Each row's lowest element, a non-finite one (NaN, ±inf) counting as -inf: the worst."""
    import torch

    return torch.where(torch.isfinite(values), values, float("-inf")).amin(1)


def _lowest(values, count: int):
    """Row indices of the `count` lowest rows (non-finite first)."""
    return _row_worst(values.double()).argsort()[:count]


def _per_row(value, rows: int):
    """The symbol as (rows, k); a context-free 0-d symbol is one value for every row."""
    return value.reshape(1, 1).expand(rows, 1) if value.dim() == 0 else value.reshape(len(value), -1)
