"""probe.noise: the bottleneck draws fresh noise while training, and eval behaves as documented.

Black-box: two forward passes under different seeds must give different z_I in train mode. A
noise tensor baked into a trace as a constant, or a sampling step that never runs, gives
identical values and fails here even where the graph checks cannot tell.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.probes.support import (
    eval_pair,
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


class NoiseProbeCheck(Check):
    ids = ("probe.noise",)
    explanations = {
        "probe.noise": (
            "Runs the real model twice on the same batch with different random seeds. In train mode the "
            "bound symbol (z_I) must differ between the passes: the bottleneck samples z = μ + σ⊙ε afresh. "
            "In eval mode it must behave as `probes.noise.eval` documents: identical passes "
            "(deterministic, e.g. z = μ) or different ones (stochastic). It cannot tell where the noise "
            "enters (the graph checks do) nor whether it is Gaussian. Fix: draw ε with torch.randn_like "
            "inside forward on every call, and switch on `self.training` for the eval behaviour."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.noise is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        import torch

        from alignguard.probes.runtime import SymbolError

        probe = context.spec.probes.noise
        name, seed = probe.symbol, probe_seed(context)
        element = f"symbol {name}"
        inputs = probe_inputs(context)
        values = {}
        try:
            # The eval pair first, shared with noise.eval (eval_pair): it replays the capture an earlier eval
            # run of these inputs made, which the train pair would drop.
            kind, pair = eval_pair(context, name)
            if kind == "error":
                raise pair
            for offset, value in enumerate(pair):
                values[False, offset] = runner(context).part(name, value)
            with torch.no_grad(), user_forward(context):
                for offset in (0, 1):
                    run = runner(context).run(inputs, train=True, seed=seed + offset, observe=[name])
                    values[True, offset] = run[name]
        except SymbolError as exc:
            yield failed("probe.noise", element, f"{name} readable by running the model", str(exc),
                         fix=f"bind {name} to a forward output or a module output that exists")
            return
        where = symbol_where(context, name, inputs)
        seeds = f"seeds {seed} and {seed + 1}"
        train_diff = max_abs_diff(values[True, 0], values[True, 1])
        expected = f"train mode: {name} differs between two passes with different seeds"
        if train_diff > 0:
            yield passed("probe.noise", element, expected, f"max |Δ{name}| = {train_diff:.3g} between {seeds}",
                         where=where, details={"mode": "train", "max_abs_diff": train_diff})
        else:
            yield failed("probe.noise", element, expected,
                         f"identical {name} in train mode under {seeds}: no noise is drawn (sampling never runs, "
                         "or a noise tensor is a constant)",
                         fix=f"sample ε = torch.randn_like(σ) in forward on every training call and set "
                         f"{name} = μ + σ * ε", where=where, details={"mode": "train", "max_abs_diff": 0.0})
        eval_diff = max_abs_diff(values[False, 0], values[False, 1])
        details = {"mode": "eval", "max_abs_diff": eval_diff, "documented": probe.eval}
        if probe.eval == "deterministic":
            expected = f"eval mode: {name} identical between passes with different seeds (documented deterministic)"
            if eval_diff == 0:
                yield passed("probe.noise", element, expected, f"identical under {seeds}", where=where, details=details)
            else:
                yield failed("probe.noise", element, expected,
                             f"max |Δ{name}| = {eval_diff:.3g} between {seeds} in eval mode: still stochastic",
                             fix=f"return the mean (z = μ) when not self.training, or document "
                             "`probes.noise.eval: stochastic`", where=where, details=details)
        else:
            expected = f"eval mode: {name} differs between passes with different seeds (documented stochastic)"
            if eval_diff > 0:
                yield passed("probe.noise", element, expected, f"max |Δ{name}| = {eval_diff:.3g} between {seeds}",
                             where=where, details=details)
            else:
                yield failed("probe.noise", element, expected, f"identical under {seeds} in eval mode: deterministic",
                             fix="document `probes.noise.eval: deterministic`, or keep sampling in eval",
                             where=where, details=details)
