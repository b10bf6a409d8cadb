"""probe.positivity: M(c) and T(c) stay positive for any cell context, including extreme ones.

The design needs M > 0 (concentration scales affinity, it never flips its sign) and T > 0 (a
temperature). The probe runs the real model over `trials` contexts: observed ones, typical
draws, and draws up to `scale` standard deviations out (unseen cell lines are exactly that).
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks._probe_support import probe_inputs, probe_seed, runner, symbol_where, user_forward
from alignguard.checks.base import Check, CheckResult, failed, passed, register
from alignguard.checks.context import CheckContext


@register
class PositivityProbe(Check):
    ids = ("probe.positivity",)
    order = 73
    explanations = {
        "probe.positivity": (
            "Runs the real model in eval mode over `trials` cell contexts (every input with role "
            "`context`): observed rows, Gaussian draws around them, draws up to `scale` standard "
            "deviations out and the corners of that box. Each listed symbol (M, T) must be finite and "
            "strictly positive everywhere; a failure names the symbol, its value and the context. It "
            "samples, so it cannot prove positivity for every input. Fix: produce the symbol through "
            "softplus/exp plus a small floor (softplus underflows to exactly 0 in float32)."
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
            for symbol in probe.symbols:  # one small run per symbol first, so one bad binding fails alone
                try:
                    runner(context).run(batches[0], seed=probe_seed(context), observe=[symbol])
                except SymbolError as exc:
                    failures[symbol] = str(exc)
            readable = [s for s in probe.symbols if s not in failures]
            values: dict[str, list] = {s: [] for s in readable}
            for batch in batches:
                run = runner(context).run(batch, seed=probe_seed(context), observe=readable) if readable else {}
                rows = len(batch[names[0]])
                for symbol in readable:
                    value = run[symbol].detach().double()
                    # A context-free symbol (a global temperature) is one value for every row.
                    value = value.reshape(1, 1).expand(rows, 1) if value.dim() == 0 else value.reshape(len(value), -1)
                    values[symbol].append(value)
        for symbol in probe.symbols:
            element, expected = f"symbol {symbol}", f"{symbol} > 0 and finite for {probe.trials} contexts up to {probe.scale:g} std devs out"
            where = symbol_where(context, symbol, inputs)
            if symbol in failures:
                yield failed("probe.positivity", element, expected, failures[symbol],
                             fix=f"bind {symbol} to a forward output or module output that exists", where=where)
                continue
            yield self._judge(symbol, element, expected, torch.cat(values[symbol]), contexts, inputs, names, where)

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

    def _judge(self, symbol, element, expected, values, contexts, inputs, names, where) -> CheckResult:
        import torch

        from alignguard.probes.contexts import describe_context

        bad = ~torch.isfinite(values) | (values <= 0)
        row_bad = bad.any(dim=1)
        finite = values[torch.isfinite(values)]
        low = float(finite.min()) if finite.numel() else float("nan")
        details = {"min": low, "violations": int(row_bad.sum()), "trials": len(values)}
        if not bool(row_bad.any()):
            return passed("probe.positivity", element, expected,
                          f"min {symbol} = {low:.3g} over {len(values)} contexts", where=where, details=details)
        first = int(row_bad.nonzero()[0])
        value = values[first][bad[first]][0].item()
        at = "; ".join(f"{n}: {describe_context(contexts[n][first], inputs[n])}" for n in names)
        kind = "not finite" if value != value or abs(value) == float("inf") else "not positive"
        return failed("probe.positivity", element, expected,
                      f"{symbol} = {value:.3g} ({kind}) in {int(row_bad.sum())}/{len(values)} contexts, e.g. {at}",
                      fix=f"produce {symbol} as softplus(.) + a small floor (or exp of a clamped value) so it stays "
                      "positive and finite for any context", where=where, details=details)
