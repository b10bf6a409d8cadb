"""gradient.conflict, gradient.cancellation, params.dead: how the loss terms interact.

The seed's failure: ∇L_orth ≈ −α∇L_domain, so the net gradient vanished after epoch 2 while
each term was large. Conflict is the pairwise cosine of the terms' gradients, cancellation the
ratio |Σ g_i| / Σ |g_i|; both are measured at `gradients.step` (default: the largest loss step)
over every term `loss_terms` returns, the unexpected ones included.
"""

from __future__ import annotations

from itertools import combinations
from typing import Iterable

from alignguard.checks.gradients.measurement import (
    batches_phrase,
    conflict_step,
    loss_terms_where,
    measurement,
    owning_module,
)
from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.results import CheckResult, Where, failed, passed


class GradientConflictCheck(Check):
    ids = ("gradient.conflict", "gradient.cancellation", "params.dead")
    explanations = {
        "gradient.conflict": (
            "For every pair of loss terms with a gradient, cos(g_i, g_j) over the trainable parameters must "
            "be at least `gradients.min_cosine`, or lie within the pair's own [min_cosine, max_cosine] from "
            "`gradients.pairs` (terms that oppose by construction, e.g. DANN's label and domain losses: a "
            "max_cosine below 0 states that they must oppose). A pair below it pushes the parameters in opposite "
            "directions (the seed's ∇L_orth ≈ −α∇L_domain, cosine ≈ −1). Measured on the real model with "
            "autograd, so gradient reversal counts. It is a snapshot at one step on a few batches. Fix: "
            "drop or reweight one of the pair, or project out the conflict (PCGrad)."
        ),
        "gradient.cancellation": (
            "net/sum = |Σ g_i| / Σ |g_i| must be at least `gradients.min_net_ratio`: 1 when all terms agree, "
            "near 0 when they cancel, so the total barely moves although each term is large (the seed's "
            "loss decrease falling from 26.5% to 0.04% per epoch). Fix: remove the terms that cancel, or "
            "reweight them."
        ),
        "params.dead": (
            "Every trainable parameter receives a non-zero gradient from some loss term at some measured "
            "step. A parameter no loss reaches never trains: a module built but unused, or used only "
            "behind a detach. Results are grouped by module. Fix: use the module on a path to a loss, "
            "freeze it (requires_grad=False) on purpose, or delete it."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.losses)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        spec = context.spec
        step = measurement(context)[conflict_step(spec)]
        stats = step.stats()
        alive = [n for n in step.names if step.status(n) == "alive"]
        details = {"step": step.step, "batches": step.batches, **stats.as_dict(), "table": stats.table()}
        over = f"at step {step.step} over {batches_phrase(context)}"
        where = loss_terms_where(context)
        if len(spec.losses) >= 2:
            yield from self._conflict(context, step, stats, alive, details, over, where)
        yield from self._cancellation(context, stats, alive, details, over, where)
        if spec.gradients.dead_params:
            yield from self._dead(context)

    def _conflict(self, context, step, stats, alive, details, over, where) -> Iterable[CheckResult]:
        bound = context.spec.gradients.min_cosine
        if len(alive) < 2:
            yield failed("gradient.conflict", "losses", f"pairwise cosines >= {bound:g}",
                         f"matched nothing: {len(alive)} term(s) with a gradient {over} "
                         f"({', '.join(alive) or 'none'}); see loss.alive",
                         fix="make the design's loss terms alive", where=where, details=details)
            return
        pairs = {frozenset(p.terms): p for p in context.spec.gradients.pairs}
        for a, b in combinations(alive, 2):
            cosine = stats.cosine(a, b)
            pair = pairs.get(frozenset((a, b)))
            low, high = (pair.min_cosine, pair.max_cosine) if pair else (bound, 1.0)
            expected = (f"{low:g} <= cos(g_{a}, g_{b}) <= {high:g} (the pair's own bounds)" if pair
                        else f"cos(g_{a}, g_{b}) >= {bound:g}")
            found = (f"cos(g_{a}, g_{b}) = {cosine:.3f} {over} (|g_{a}| {stats.norms[a]:.3g}, "
                     f"|g_{b}| {stats.norms[b]:.3g})")
            if pair and cosine > high:
                yield failed("gradient.conflict", f"losses {a}, {b}", expected,
                             f"{found}: the pair the design opposes by construction does not oppose"
                             + (f" ({pair.why})" if pair.why else ""),
                             fix=f"check that '{a}' and '{b}' still compete as designed (a removed reversal, a "
                             "detached adversary)", where=where, details=details)
            elif cosine >= low:
                yield passed("gradient.conflict", f"losses {a}, {b}", expected, found, where=where, details=details)
            else:
                ratio = stats.norms[a] / stats.norms[b]
                # Near-antiparallel gradients are the seed's ∇L_orth ≈ −α∇L_domain; say it that way.
                shape = f"∇L_{a} ≈ −{ratio:.2g}·∇L_{b}, " if cosine < -0.9 else ""
                yield failed("gradient.conflict", f"losses {a}, {b}", expected,
                             f"{found}: {shape}the two terms push the parameters in opposing directions"
                             f"\n{stats.table()}",
                             fix=f"drop or reweight '{a}' or '{b}', or project out the conflicting component "
                             "(PCGrad); if they are an adversarial pair by design, lower `gradients.min_cosine`",
                             where=where, details=details)

    def _cancellation(self, context, stats, alive, details, over, where) -> Iterable[CheckResult]:
        bound = context.spec.gradients.min_net_ratio
        expected = f"net/sum |Σg_i|/Σ|g_i| >= {bound:g}"
        if stats.net_ratio is None:
            yield failed("gradient.cancellation", "losses total", expected,
                         f"matched nothing: no term has a gradient {over}; see loss.alive",
                         fix="make the design's loss terms alive", where=where, details=details)
            return
        found = (f"net/sum = {stats.net_ratio:.3f} {over}: |g| = {stats.total_norm:.3g} against "
                 f"Σ|g_i| = {sum(stats.norms.values()):.3g}\n{stats.table()}")
        if stats.net_ratio >= bound:
            yield passed("gradient.cancellation", "losses total", expected, found, where=where, details=details)
            return
        worst = min(stats.cosines.items(), key=lambda item: item[1] if item[1] is not None else 2.0, default=None)
        pair = f"; the most opposed pair is {worst[0][0]}, {worst[0][1]} (cos {worst[1]:.3f})" if worst and worst[1] is not None else ""
        yield failed("gradient.cancellation", "losses total", expected, found.replace("\n", f"{pair}\n", 1),
                     fix="the terms cancel, so the total gradient is much smaller than its parts and training "
                     "stalls: remove or reweight the opposing terms (see gradient.conflict)",
                     where=where, details=details)

    def _dead(self, context: CheckContext) -> Iterable[CheckResult]:
        steps = measurement(context)
        reached: dict[str, float] = {}
        for step in steps.values():
            for name in step.names:
                if step.status(name) in ("alive",):
                    for param, norm in step.param_norms(name).items():
                        reached[param] = max(reached.get(param, 0.0), norm)
        any_step = next(iter(steps.values()))
        dead: dict[str, list[str]] = {}
        for param in any_step.param_names:
            if reached.get(param, 0.0) == 0.0:
                dead.setdefault(owning_module(param), []).append(param)
        total = len(any_step.param_names)
        at = ", ".join(str(s) for s in sorted(steps))
        skipped = sorted({n for s in steps.values() for n in s.names if s.status(n) == "nonfinite"})
        note = f" (non-finite terms ignored: {', '.join(skipped)})" if skipped else ""
        expected = "every trainable parameter gets a gradient from some loss term"
        if not total:
            yield failed("params.dead", "parameters", expected, "matched nothing: the model has no trainable parameters",
                         fix="build the model with trainable parameters", where=Where())
            return
        if not dead:
            yield passed("params.dead", "parameters", expected,
                         f"all {total} trainable parameter tensors reached at step(s) {at}{note}")
            return
        for module, params in dead.items():
            short = [p.rpartition(".")[2] for p in params]
            yield failed("params.dead", f"module {module}", expected,
                         f"no loss term reaches {', '.join(short)} of '{module}' at step(s) {at}{note}",
                         fix=f"use '{module}' on a path to a loss, freeze it on purpose (requires_grad=False), "
                         "or delete it", where=Where(module=module), details={"parameters": params})
