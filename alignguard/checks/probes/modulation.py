"""probe.modulation: the context scales the energy, it does not just shift it.

For the same x the slope ∂logit/∂U_I is taken under many contexts c. In the design,
logit = (M(c)·U_I + B(c)) / T(c), so the slope M(c)/T(c) varies with c. An additive head
(logit = U_I − R_E(c), or U_I + B(c)) has a slope that does not depend on c at all.
The slope comes from autograd through a forward hook that makes U_I a leaf where the module
producing it returns it; no graph is needed.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.probes.support import probe_inputs, probe_seed, runner, symbol_where, user_forward
from alignguard.results import CheckResult, failed, passed

MAX_EXAMPLES, MAX_CONTEXTS, CONTEXT_SCALE = 8, 16, 3.0
ROUNDING_SPREAD = 1e-5  # float32 rounding of a context-free slope stays far below this


class ModulationProbeCheck(Check):
    ids = ("probe.modulation",)
    explanations = {
        "probe.modulation": (
            "Takes the slope ∂output/∂energy (∂logit/∂U_I) of the real model for the same x under many "
            "contexts c, by hooking the module that returns U_I and differentiating through it. The "
            "relative spread std/mean of |slope| across contexts must exceed `min_relative_spread`: the "
            "design's multiplicative modulation (M(c)·U_I + B(c))/T(c) gives the slope M(c)/T(c), which "
            "varies with c; an additive head (U_I − R_E(c)) gives the same slope for every c and fails. "
            "It fails, rather than passes, when U_I cannot be intervened on. Fix: let the context scale "
            "the energy (M(c) > 0, T(c) > 0) instead of adding to it."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.modulation is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        from alignguard.probes.runtime import SymbolError

        probe = context.spec.probes.modulation
        element = f"symbol {probe.output}"
        expected = (f"∂{probe.output}/∂{probe.energy} for the same x varies across contexts {probe.context} "
                    f"(relative spread > {probe.min_relative_spread:g})")
        inputs = probe_inputs(context)
        if probe.context not in inputs:
            yield failed("probe.modulation", element, expected, f"matched nothing: forward takes {', '.join(inputs)}",
                         fix="set `probes.modulation.context` to forward's context argument")
            return
        try:
            with user_forward(context):
                slopes = self._slopes(context, probe, inputs)
        except SymbolError as exc:
            yield failed("probe.modulation", element, expected, f"cannot take the slope: {exc}",
                         fix=f"compute {probe.energy} in a submodule (or bind it with `module:`) so it can be "
                         "intervened on", where=symbol_where(context, probe.energy, inputs))
            return
        yield self._judge(probe, element, expected, slopes, symbol_where(context, probe.energy, inputs))

    def _slopes(self, context, probe, inputs):
        """(examples, contexts) slopes: every example's x paired with every context.

        One run per context, on the same x tensors with that context in every row, rather than one run of
        all n·k pairs: a submodule call that takes x only (the encoder) is then replayed across the runs
        (probes/replay.py, confirmed there against a real run) instead of running on k times the batch."""
        import torch

        from alignguard.probes.contexts import draw_contexts

        c = inputs[probe.context]
        n, k = min(MAX_EXAMPLES, len(c)), MAX_CONTEXTS
        # Observed contexts and draws up to CONTEXT_SCALE std devs out: cell lines not in the batch.
        contexts = draw_contexts(c, k, CONTEXT_SCALE, torch.Generator().manual_seed(probe_seed(context)))
        # the first n rows of every batch-sized input: the very tensors when n is all of them (replay keys
        # them by identity, so a capture an earlier check made on the example inputs serves these runs)
        rows = {key: value[:n] if isinstance(value, torch.Tensor) and len(value) == len(c) > n else value
                for key, value in inputs.items()}
        seed, run = probe_seed(context), runner(context)
        with torch.no_grad():  # captures the x-only calls on these rows, if no check left them captured
            run.run(rows, seed=seed, observe=[probe.output])
        columns = []
        for j in range(k):
            shape = contexts[j:j + 1].shape
            paired = {**rows, probe.context: contexts[j:j + 1].expand(n, *shape[1:]).contiguous()}
            columns.append(self._column(run, probe, paired, seed, n))
        return torch.stack(columns, dim=1).double()

    @staticmethod
    def _column(run, probe, paired, seed, n):
        """Each row's slope under this run's context: the effect of shifting all of U_I's row."""
        import torch

        from alignguard.probes.runtime import SymbolError

        leaves = []

        def make_leaf(tensor):
            leaf = tensor.detach().clone().requires_grad_(True)
            leaves.append(leaf)
            return leaf

        output = run.run(paired, seed=seed, observe=[probe.output], edits={probe.energy: make_leaf},
                         param_grads=False)[probe.output]
        if not leaves:
            raise SymbolError(f"{probe.energy} was not produced in this forward pass")
        if not output.requires_grad:
            return torch.zeros(n)
        (grad,) = torch.autograd.grad(output.sum(), leaves[-1], allow_unused=True)
        if grad is None:
            return torch.zeros(n)
        return grad.reshape(n, -1).sum(-1)

    def _judge(self, probe, element, expected, slopes, where) -> CheckResult:
        magnitude = slopes.abs()
        mean = magnitude.mean(dim=1)
        details = {"slopes": slopes.tolist()}
        if bool((mean == 0).all()):
            return failed("probe.modulation", element, expected,
                          f"∂{probe.output}/∂{probe.energy} is 0 under every context: {probe.energy} does not "
                          f"reach {probe.output}", fix=f"compute {probe.output} from {probe.energy}",
                          where=where, details=details)
        keep = mean > 0
        spread = float((magnitude[keep].std(dim=1, unbiased=False) / mean[keep]).mean())
        details["relative_spread"] = spread
        found = (f"relative spread {spread:.3g} of |∂{probe.output}/∂{probe.energy}| across {slopes.shape[1]} "
                 f"contexts ({slopes.shape[0]} examples; slope range {float(slopes.min()):.3g} .. "
                 f"{float(slopes.max()):.3g})")
        if spread > probe.min_relative_spread:
            return passed("probe.modulation", element, expected, found, where=where, details=details)
        if spread < ROUNDING_SPREAD:
            verdict = (f"the slope does not depend on the context, so the head is additive "
                       f"({probe.output} = f({probe.energy}) + g(c)) rather than multiplicative")
            fix = (f"modulate multiplicatively: {probe.output} = (M(c)·{probe.energy} + B(c)) / T(c) with M, T > 0")
        else:
            verdict = (f"the slope depends on the context, but less than the spec's bound: the modulation is "
                       "weak at these weights (a near-identity modulator at initialisation?)")
            fix = ("lower `probes.modulation.min_relative_spread` for an untrained model (an additive head gives "
                   f"0 up to rounding, below {ROUNDING_SPREAD:g}), or strengthen M(c)/T(c)")
        return failed("probe.modulation", element, expected, f"{found}: {verdict}", fix=fix, where=where,
                      details=details)
