"""probe.swap_invariance: z_I is the same for the same x whatever the cell context c.

Two forms. Value: the same x with the batch's contexts permuted, and with fresh contexts drawn
around them, leaves the symbol unchanged (eval mode, fixed seed). Gradient: ∂symbol/∂c is
exactly zero in train and eval mode, i.e. no path from c reaches it, even one that happens to
contribute little at these values (c leaking into the encoder through a concatenation fails).
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

_FIX = ("keep the context out of the invariant path: the encoder must see x only; if it must see "
        "cell-specific input, add an L_swap loss on μ over paired loci")


class SwapProbeCheck(Check):
    ids = ("probe.swap_invariance",)
    explanations = {
        "probe.swap_invariance": (
            "The invariant representation (z_I) must not depend on the cell context. Value form: the same "
            "x with the batch's contexts permuted, and with contexts drawn around them, gives the same "
            "symbol within `tolerance` (eval mode, fixed seed). Gradient form (`gradient: true`): "
            "∂symbol/∂c is exactly zero in train and eval mode, so no path from c reaches it at all. It "
            "probes the example batch only. Fix: feed only x to the encoder; if cell-specific input must "
            "enter, add an L_swap loss on μ over paired loci."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.swap_invariance is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        from alignguard.probes.runtime import SymbolError

        probe = context.spec.probes.swap_invariance
        element = f"symbol {probe.symbol}"
        inputs = probe_inputs(context)
        if probe.context not in inputs:
            expected = f"forward takes the context input '{probe.context}'"
            yield failed("probe.swap_invariance", element, expected,
                         f"matched nothing: forward takes {', '.join(inputs)}",
                         fix=f"set `probes.swap_invariance.context` to forward's context argument")
            return
        try:
            with user_forward(context):
                yield self._values(context, probe, inputs, element)
                if probe.gradient:
                    yield self._gradient(context, probe, inputs, element)
        except SymbolError as exc:
            yield failed("probe.swap_invariance", element, f"{probe.symbol} readable by running the model",
                         str(exc), fix=f"bind {probe.symbol} to a forward output or a module output that exists")

    def _values(self, context, probe, inputs, element) -> CheckResult:
        import torch

        from alignguard.probes.contexts import draw_contexts

        name, c = probe.symbol, inputs[probe.context]
        seed = probe_seed(context)
        generator = torch.Generator().manual_seed(seed)
        swapped = {
            "permuted": c[torch.randperm(len(c), generator=generator)] if len(c) > 1 else c,
            "drawn": draw_contexts(c, len(c), 3.0, generator),
        }
        with torch.no_grad():
            base = runner(context).run(inputs, seed=seed, observe=[name])[name]
            diffs = {kind: max_abs_diff(base, runner(context).run({**inputs, probe.context: other}, seed=seed,
                                                                    observe=[name])[name])
                     for kind, other in swapped.items()}
        worst = max(diffs, key=diffs.get)
        expected = f"the same x with other contexts {probe.context} leaves {name} unchanged (eval, |Δ| <= {probe.tolerance:g})"
        found = ", ".join(f"{kind} {probe.context}: max |Δ{name}| = {d:.3g}" for kind, d in diffs.items())
        details = {"form": "value", "max_abs_diff": diffs}
        where = symbol_where(context, name, inputs)
        if diffs[worst] <= probe.tolerance:
            return passed("probe.swap_invariance", element, expected, found, where=where, details=details)
        return failed("probe.swap_invariance", element, expected,
                      f"{name} changes with the context ({found}): c reaches the invariant representation",
                      fix=_FIX, where=where, details=details)

    def _gradient(self, context, probe, inputs, element) -> CheckResult:
        import torch

        name, c = probe.symbol, inputs[probe.context]
        expected = f"∂{name}/∂{probe.context} exactly zero in train and eval mode"
        where = symbol_where(context, name, inputs)
        if not c.is_floating_point():
            return failed("probe.swap_invariance", element, expected,
                          f"'{probe.context}' is a {c.dtype} tensor, which has no gradient: the gradient form "
                          "cannot run", fix="set `probes.swap_invariance.gradient: false` (the value form still "
                          "runs) or pass the context as floating-point features", where=where)
        runs = {}
        # Eval first: it may replay the x-only calls the value form captured (a train run drops them).
        for mode, train in (("eval", False), ("train", True)):
            leaf = c.detach().clone().requires_grad_(True)
            runs[mode] = leaf, runner(context).run({**inputs, probe.context: leaf}, train=train,
                                                   seed=probe_seed(context), observe=[name], param_grads=False)[name]
        norms = {}
        generator = torch.Generator().manual_seed(probe_seed(context))
        for mode in ("train", "eval"):  # the weights drawn in this order, as before the runs were reordered
            leaf, value = runs[mode]
            weights = torch.randn(value.shape, generator=generator, dtype=value.dtype)
            grad = None
            if value.requires_grad:
                (grad,) = torch.autograd.grad((value * weights).sum(), leaf, allow_unused=True)
            norms[mode] = 0.0 if grad is None else float(grad.abs().max())
        details = {"form": "gradient", "max_abs_grad": norms}
        found = ", ".join(f"{mode}: max |∂{name}/∂{probe.context}| = {n:.3g}" for mode, n in norms.items())
        if all(n == 0.0 for n in norms.values()):
            return passed("probe.swap_invariance", element, expected, found, where=where, details=details)
        return failed("probe.swap_invariance", element, expected,
                      f"{found}: a path from {probe.context} reaches {name}", fix=_FIX, where=where, details=details)
