"""gradient.direction: an adversarial design stated as positive rules.

`losses.NAME.reversed_on` lists the parameters on which the term's gradient is reversed by design
(DANN's feature extractor behind a gradient-reversal layer): moving those parameters along
autograd's gradient must *raise* the term, i.e. the central-difference slope along the gradient
restricted to them is negative. `plain_on` lists parameters on which it must be the plain slope
(the domain classifier descends its loss). The same central differences as loss.descent, on the
gradient restricted to one group of parameters; loss.descent itself judges the term on the
parameters not declared reversed. A removed reversal therefore fails here, with no waiver.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.gradients.measurement import loss_terms_where
from alignguard.checks.base import Check
from alignguard.results import CheckResult, failed, passed
from alignguard.checks.context import CheckContext
from alignguard.checks.gradients.rules import resolve_target

ID = "gradient.direction"


def group_covers(context: CheckContext, names: list[str], param_names: list[str]) -> list[bool]:
    """Per trainable parameter: is it covered by the components/patterns `names`?"""
    covered: set[str] = set()
    for name in names:
        target = resolve_target(context, name)
        covered |= set(target.params or ())
    return [p in covered for p in param_names]


class GradientDirectionCheck(Check):
    ids = (ID,)
    explanations = {
        ID: (
            "For each loss with `reversed_on` / `plain_on`, restricts the term's autograd gradient g_i to that group "
            "of parameters and measures the term's central-difference slope along it (as loss.descent does, with "
            "the same ε and shorter steps). `reversed_on`: the slope must be negative, so that minimising the total "
            "raises the term on those parameters (a gradient-reversal layer: DANN's feature extractor maximises "
            "the domain loss). `plain_on`: slope/|g| must be 1 within `gradients.descent_tolerance` (the domain "
            "classifier minimises it). A group with no gradient at the loss's step fails (a reversal coefficient "
            "alpha(p) stuck at 0). loss.descent judges the term on the remaining parameters, so the design needs no "
            "waiver, and a removed or misplaced reversal fails. Fix: put the gradient-reversal layer between the "
            "reversed group and the rest (features -> GRL -> domain classifier), with a coefficient > 0 at the step."
        ),
    }

    def applies(self, spec) -> bool:
        return any(loss.reversed_on or loss.plain_on for loss in spec.losses.values())

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        from alignguard.checks.gradients.descent import LossDescentCheck, _restored, _roundoff, _train_mode
        from alignguard.gradients.measure import term_gradients, trainable_parameters

        descent = LossDescentCheck()
        named = trainable_parameters(context.model)
        params = [p for _, p in named]
        param_names = [n for n, _ in named]
        where = loss_terms_where(context)
        for name, loss in context.spec.losses.items():
            groups = [(t, "reversed") for t in loss.reversed_on] + [(t, "plain") for t in loss.plain_on]
            if not groups:
                continue
            with _restored(context.model), _train_mode(context.model):
                outputs = descent._forward(context, loss.step)
                terms = descent._terms(context, outputs, loss.step)
                if name not in terms:
                    yield failed(ID, f"loss {name}", "the term to judge", f"matched nothing: no term '{name}'",
                                 fix="return the term (see loss.present)", where=where)
                    continue
                rows: dict = {}  # the term's gradient per parameter, streamed (no flat or float64 copy)
                grads = term_gradients({name: terms[name]}, params, into=rows)
                grad = rows.get(name) or [None] * len(params)
                value, roundoff = grads.values[name], _roundoff(params, terms[name].dtype)
                del outputs, grads, rows
                for target, expected_kind in groups:
                    covers = group_covers(context, [target], param_names)
                    size = sum(p.numel() for p, inside in zip(params, covers) if inside)
                    yield self._judge(context, descent, params, name, loss.step, target, expected_kind,
                                      [g if inside else None for g, inside in zip(grad, covers)], value, roundoff,
                                      size, where)

    def _judge(self, context, descent, params, name, step, target, kind, grad, value, roundoff, size, where):
        label = resolve_target(context, target).label
        element = f"loss {name} on {target}"
        expected = (f"the gradient of L_{name} on {label} is reversed: moving along it raises L_{name} (slope < 0)"
                    if kind == "reversed" else
                    f"the gradient of L_{name} on {label} is its plain slope (ratio 1 within "
                    f"{context.spec.gradients.descent_tolerance:g})") + f" at step {step}"
        if not size:
            return failed(ID, element, expected, f"matched nothing: {label} has no trainable parameters",
                          fix="point the rule at trainable parameters", where=where)
        from alignguard.gradients.measure import norm64

        norm = norm64(grad)
        if norm == 0:
            return failed(ID, element, expected,
                          f"L_{name} has no gradient on {label} at step {step} (a reversal coefficient that is 0 at "
                          "this step, or a detach between them)",
                          fix="make the reversal coefficient > 0 at the step (alpha(p) must follow the schedule), or "
                          "remove the detach", where=where)
        slopes, _ = descent._slopes(context, params, name, step, grad, value, roundoff)
        ratio = slopes[-1].ratio
        tolerance = context.spec.gradients.descent_tolerance
        trail = ", ".join(f"{s.ratio:+.3f} at ε = {s.epsilon:g}" for s in slopes)
        found = f"slope/|g| along g_{name} restricted to {label}: {trail} (|g| = {norm:.3g})"
        details = {"step": step, "ratios": [[s.epsilon, s.ratio] for s in slopes], "grad_norm": norm}
        if kind == "reversed":
            if ratio < -tolerance:
                return passed(ID, element, expected, found, where=where, details=details)
            return failed(ID, element, expected,
                          f"the gradient of L_{name} on {label} is not reversed: minimising the total lowers L_{name} "
                          f"there too, so nothing is adversarial ({found})",
                          fix="put the gradient-reversal layer between these parameters and the rest of the term "
                          "(features -> GRL -> domain classifier)", where=where, details=details)
        if abs(ratio - 1.0) <= tolerance:
            return passed(ID, element, expected, found, where=where, details=details)
        how = "reversed" if ratio < 0 else "scaled away from the slope"
        return failed(ID, element, expected,
                      f"the gradient of L_{name} on {label} is {how}: these parameters do not descend L_{name} "
                      f"({found})",
                      fix="move the gradient-reversal layer to the input of this module, not after it",
                      where=where, details=details)
