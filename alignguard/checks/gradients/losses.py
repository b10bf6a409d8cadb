"""loss.present, loss.alive, loss.share, loss.reaches: every design loss exists, has a gradient,
carries its share of the total gradient and shapes the components it is meant to shape.

All four read one measurement (see `measurement.py`): per-term gradients over the
trainable parameters, on the real model with autograd, at the step each loss names.
"""

from __future__ import annotations

import difflib
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

_DEAD_WHY = {
    "detached": (
        "it is detached: the term has no grad_fn (built from .detach(), .item(), torch.no_grad() or a "
        "fresh tensor), so it has no gradient on any parameter",
        "compute the term from the model's outputs without .detach()/.item()/no_grad",
    ),
    "unreached": (
        "it is detached from the trainable parameters: it has a grad_fn, but the gradient is None on "
        "every trainable parameter (it depends only on frozen or detached tensors)",
        "compute the term from outputs that depend on trainable parameters",
    ),
    "zero_value": (
        "its weight is zero at this step: the value is exactly 0 and so is its gradient (a weight or "
        "schedule such as β(step) = 0)",
        "measure it at a step where its weight is > 0 (`losses.NAME.step`), or fix the weight",
    ),
    "zero_gradient": (
        "its gradient is identically 0 although its value is not (a zero factor inside the term, or a "
        "dependence only through argmax/round/comparisons, which have no gradient)",
        "make the term depend differentiably on the parameters, or fix a zero weight inside it",
    ),
}


def _suggest(name: str, names: Iterable[str]) -> str:
    guess = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{guess[0]}'?)" if guess else ""


class LossCheck(Check):
    ids = ("loss.present", "loss.alive", "loss.share", "loss.reaches")
    explanations = {
        "loss.present": (
            "Every loss the spec names is a key of the dict `loss_terms(model, batch, outputs, step)` "
            "returns, and the dict holds no term the spec does not name (severity of those: "
            "`gradients.unexpected_losses`). The legacy model's L_orth and L_domain show up here. It "
            "cannot tell whether the term computes what its name says. Fix: return the design's terms, "
            "or name the extra ones in the spec."
        ),
        "loss.alive": (
            "Each design loss has a non-zero, finite gradient on the trainable parameters at the step it "
            "is measured (`losses.NAME.step`), averaged over `gradients.batches` example batches. Three "
            "failures are told apart: a detached term (no grad_fn, or no path to any trainable parameter), "
            "a term whose weight is zero at that step (value exactly 0, or gradient identically 0), and a "
            "NaN/inf value or gradient. A loss computed but never backpropagated is exactly what the seed "
            "warns about. Fix: compute the term from the model's outputs, and measure it at a step where "
            "its weight is positive."
        ),
        "loss.share": (
            "share_i = g_i·g/|g|² with g = Σ g_i over all returned terms (shares sum to 1; negative means "
            "the term pushes against the total), measured with one forward and one autograd.grad per term "
            "on the real model; it must lie in [min_share, max_share]. |g_i|/|g| is reported next to it "
            "(the seed's ‖∇L_new‖/‖∇L_total‖) and bounded below by `min_norm_ratio`: a small term nearly "
            "orthogonal to the total (a KL) has a share of about 0 of either sign, so bound it by the ratio "
            "(and set its min_share slightly below 0). It proves the term moves training at that step on those "
            "batches, not that it keeps doing so. Fix: reweight the term, or measure at the step the "
            "design intends."
        ),
        "loss.reaches": (
            "The loss has a non-zero gradient on every target its `reaches` lists: the parameters of a component, "
            "parameters named by a pattern (`film_generator.weight`), or a symbol (dL/d symbol on its real tensor, "
            "a chunk of a module output included: a detached FiLM gamma or VIB sigma gives exactly 0). "
            "For components: the parameters of every component its `reaches` lists "
            "(a KL must reach the bottleneck, a ranking loss the encoder and the modulator). Autograd on "
            "the real model honours custom backward functions such as gradient reversal. Fix: compute the "
            "term from that component's output, or remove a detach/no_grad on the way."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.losses)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        steps = measurement(context)
        yield from self._present(context, steps)
        for name, loss in context.spec.losses.items():
            step = steps[loss.step]
            if name not in step.names:
                continue  # loss.present already failed it
            alive = yield from self._alive(context, name, step)
            yield from self._share(context, name, loss, step, alive)
            yield from self._reaches(context, name, loss, step, alive)

    # ---- loss.present -------------------------------------------------------------------
    def _present(self, context: CheckContext, steps) -> Iterable[CheckResult]:
        spec, where = context.spec, loss_terms_where(context)
        returned: list[str] = []
        for measured in steps.values():
            returned += [n for n in measured.names if n not in returned]
        fn = context.model_file.loss_terms.__name__
        for name, loss in spec.losses.items():
            names = steps[loss.step].names
            if name in names:
                yield passed("loss.present", f"loss {name}", f"`{fn}` returns '{name}'",
                             f"'{name}' returned at step {loss.step}", where=where)
            else:
                yield failed("loss.present", f"loss {name}", f"`{fn}` returns '{name}'",
                             f"matched nothing: `{fn}` returns {', '.join(names)} at step {loss.step}"
                             + _suggest(name, names),
                             fix=f"implement the design's {name} term and return it under the key '{name}'",
                             where=where)
        policy, at = spec.gradients.unexpected_losses, conflict_step(spec)
        stats = steps[at].stats()
        for name in returned:
            if name in spec.losses:
                continue
            share = stats.shares.get(name)
            share_text = f" (share {share:.3g} of the gradient at step {at})" if share is not None else ""
            element, expected = f"loss {name}", "only the terms the spec names"
            found = f"`{fn}` also returns '{name}'{share_text}, which the spec does not name"
            if policy == "allow":
                yield passed("loss.present", element, expected, found + " (allowed)", where=where)
            else:
                yield failed("loss.present", element, expected, found,
                             fix=f"remove '{name}' from `{fn}` if the design has no such loss, or add it under "
                             "`losses` with its bounds (`gradients.unexpected_losses: allow` accepts extras)",
                             where=where, severity=policy)

    # ---- loss.alive ---------------------------------------------------------------------
    def _alive(self, context: CheckContext, name: str, step) -> Iterable[CheckResult]:
        status, where = step.status(name), loss_terms_where(context)
        element = f"loss {name}"
        expected = f"a finite, non-zero gradient at step {step.step}"
        over = f"at step {step.step} over {batches_phrase(context)}"
        if status == "alive":
            norm = step.grad_norm(name)
            yield passed("loss.alive", element, expected,
                         f"value {step.mean_value(name):.4g}, |g_{name}| = {norm:.3g} {over}", where=where,
                         details={"step": step.step, "value": step.mean_value(name), "grad_norm": norm})
            return True
        if status == "nonfinite":
            bad = step.batches_with(name, "nonfinite")
            values = [step.values[name][i] for i in bad]
            finite_values = all(v is not None and abs(v) != float("inf") and v == v for v in values)
            what = "its gradient" if finite_values else f"its value ({', '.join(f'{v}' for v in values)})"
            yield failed("loss.alive", element, expected, f"NaN/inf: {what} is not finite in batch(es) "
                         f"{', '.join(map(str, bad))} {over}",
                         fix="find the operation that overflows (log of 0, division by 0, exp of a large "
                         "number) and stabilise it (clamp, log-sum-exp, an eps)",
                         where=where, details={"step": step.step, "status": status, "batches": bad})
            return False
        why, fix = _DEAD_WHY[status]
        counts = step.status_counts(name)
        mixed = "" if len(counts) == 1 else " (per batch: " + ", ".join(f"{s} ×{c}" for s, c in counts.items()) + ")"
        value = step.mean_value(name)
        yield failed("loss.alive", element, expected,
                     f"no gradient: {why}; value {value:.4g} {over}{mixed}",
                     fix=fix.replace("NAME", name), where=where,
                     details={"step": step.step, "status": status, "value": value})
        return False

    # ---- loss.share ---------------------------------------------------------------------
    def _share(self, context: CheckContext, name: str, loss, step, alive: bool) -> Iterable[CheckResult]:
        stats = step.stats()
        element, where = f"loss {name}", loss_terms_where(context)
        bounds = f"[{loss.min_share:g}, {loss.max_share:g}]" if loss.max_share is not None else f">= {loss.min_share:g}"
        expected = f"share g_{name}·g/|g|² {bounds}" + (
            f" and |g_{name}|/|g| >= {loss.min_norm_ratio:g}" if loss.min_norm_ratio else "") + f" at step {step.step}"
        details = {"step": step.step, "batches": step.batches, **stats.as_dict(), "table": stats.table()}
        share, ratio = stats.shares.get(name), stats.norm_ratios.get(name)
        table = f"\n{stats.table()}"
        if not alive:
            yield failed("loss.share", element, expected,
                         f"no share: the loss has no gradient at step {step.step} (see loss.alive){table}",
                         fix="make the loss alive first", where=where, details=details)
            return
        if share is None:
            yield failed("loss.share", element, expected,
                         f"the total gradient is zero at step {step.step}: shares are undefined{table}",
                         fix="the terms cancel exactly or none has a gradient; see gradient.cancellation",
                         where=where, details=details)
            return
        found = f"share {share:.3g} (|g_{name}|/|g| = {ratio:.3g}) at step {step.step} over {batches_phrase(context)}"
        low = share < loss.min_share
        high = loss.max_share is not None and share > loss.max_share
        weak = ratio < loss.min_norm_ratio
        if not (low or high or weak):
            yield passed("loss.share", element, expected, found + table, where=where, details=details)
            return
        if weak and not low:
            fix = (f"|g_{name}| is {ratio:.3g} of the net gradient: raise the weight of '{name}' or check the "
                   "step it is measured at")
        elif low:
            fix = (f"raise the weight of '{name}' (or lower the others'), or check it is measured at the step the "
                   "design intends" + ("; a negative share means it pushes against the total" if share < 0 else ""))
        else:
            fix = f"lower the weight of '{name}' so it does not dominate the gradient"
        yield failed("loss.share", element, expected, found + table, fix=fix, where=where, details=details)

    # ---- loss.reaches -------------------------------------------------------------------
    def _reaches(self, context: CheckContext, name: str, loss, step, alive: bool) -> Iterable[CheckResult]:
        from alignguard.checks.modules import module_exists, suggest_module

        norms = step.param_norms(name)
        reached: dict[str, float] = {}
        for param, norm in norms.items():
            if norm > 0:
                top = owning_module(param).split(".")[0]
                reached[top] = (reached.get(top, 0.0) ** 2 + norm ** 2) ** 0.5
        reached_text = ", ".join(f"{m} (|g| {n:.3g})" for m, n in reached.items()) or "no parameter"
        for component_name in loss.reaches:
            if component_name not in context.spec.components:  # a symbol or a parameter name
                from alignguard.checks.gradients.rules import judge_reaches_params, judge_reaches_symbol, resolve_target

                target = resolve_target(context, component_name)
                yield (judge_reaches_symbol(context, name, component_name, step.step) if target.symbol
                       else judge_reaches_params(context, name, target, step))
                continue
            path = context.spec.components[component_name].module
            element, where = f"loss {name}", Where(module=path)
            expected = f"non-zero gradient of {name} on the parameters of '{path}' ({component_name}) at step {step.step}"
            if not module_exists(context.model, path):
                yield failed("loss.reaches", element, expected, f"matched nothing: no module '{path}'",
                             fix=suggest_module(context.model, path), where=where)
                continue
            mine = {p: n for p, n in norms.items() if p == path or p.startswith(path + ".")}
            if not mine:
                yield failed("loss.reaches", element, expected,
                             f"matched nothing: '{path}' has no trainable parameters",
                             fix="point the component at a module with trainable parameters", where=where)
                continue
            norm = sum(n ** 2 for n in mine.values()) ** 0.5
            details = {"step": step.step, "norm": norm, "reached": reached}
            if alive and norm > 0:
                yield passed("loss.reaches", element, expected,
                             f"|g_{name}| on '{path}' = {norm:.3g} ({sum(n > 0 for n in mine.values())}/{len(mine)} "
                             "parameter tensors)", where=where, details=details)
            else:
                yield failed("loss.reaches", element, expected,
                             f"zero gradient on all {len(mine)} parameter tensors of '{path}'; {name} reaches only: "
                             f"{reached_text}",
                             fix=f"compute {name} from the output of '{path}' (or remove a detach/no_grad on the "
                             "way), or correct `reaches` if the design says otherwise",
                             where=where, details=details)
