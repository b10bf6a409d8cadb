"""Gradient rules at the level designs state them.

loss.reaches (for symbols and parameter names; components are judged with the loss checks),
loss.avoids (stop-gradient designs), params.frozen, and gradient.straight_through. Gradients on
parameters come from the shared per-term measurement; gradients on symbols (dL/d symbol, a chunk
of a module output included) from one train-mode forward per batch that keeps the symbol's tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from alignguard.checks.gradients.measurement import batches_phrase, loss_terms_where, measurement
from alignguard.checks.base import Check
from alignguard.results import CheckResult, Where, failed, passed
from alignguard.checks.context import CheckContext
from alignguard.checks.modules import parameters_named


@dataclass(frozen=True)
class Target:
    """A gradient target: the parameters of a component or a parameter pattern, or a symbol."""

    label: str  # how the report names it
    params: tuple[str, ...] | None = None  # every parameter name it covers (trainable or not)
    symbol: str | None = None
    missing: str = ""  # why it matches nothing


def resolve_target(context: CheckContext, name: str) -> Target:
    if name in context.spec.symbols:
        return Target(f"symbol {name}", symbol=name)
    label, params, missing = parameters_named(context.spec, context.model, name)
    return Target(label, params, missing=missing)


def symbol_gradients(context: CheckContext, step: int) -> dict:
    """{term: {symbol: SymbolGradient}} for every symbol a loss rule names, at `step` (memoised)."""
    return context.memo(f"symbol_gradients:{step}", lambda: _measure_symbols(context, step))


def _rule_symbols(spec) -> list[str]:
    names: list[str] = []
    for loss in spec.losses.values():
        names += [n for n in (*loss.reaches, *loss.avoids) if n in spec.symbols]
        for rule in loss.straight_through:
            names += [rule.output, rule.input]
    for name, binding in spec.symbols.items():
        if binding.stochastic and binding.stochastic.scale:
            names.append(name)
    return list(dict.fromkeys(names))


def _measure_symbols(context: CheckContext, step: int) -> dict:
    from alignguard.checks.running import runner, user_forward
    from alignguard.gradients.targets import symbol_gradients as measure
    from alignguard.modelfile.loader import forward_inputs

    spec = context.spec
    symbols = _rule_symbols(spec)
    symbol_runner = runner(context)
    count = spec.gradients.batches
    batches = [context.batch(i, step=step) for i in range(count)]

    def run(i: int, batch: dict):
        seen = symbol_runner.run(forward_inputs(context.model, batch), train=True,
                                 seed=spec.entry_points.seed + i, observe=symbols, whole=True)
        return {s: seen[s] for s in symbols}, seen["__outputs__"]

    def terms_at(batch: dict, outputs):
        return context.model_file.loss_terms_at(context.model, batch, outputs, step)

    with user_forward(context):
        return measure(run, terms_at, batches, symbols, {s: spec.symbols[s].select for s in symbols})


def param_norm(step_measurement, term: str, params: Iterable[str]) -> tuple[float, int, int]:
    """(|g| over the trainable ones among `params`, tensors reached, trainable tensors)."""
    norms = step_measurement.param_norms(term) if term in step_measurement.names else {}
    mine = [norms[p] for p in params if p in norms]
    return sum(n ** 2 for n in mine) ** 0.5, sum(n > 0 for n in mine), len(mine)


_WHY_ZERO = {
    "zero": "dL/d{s} is exactly 0: no path from {s} to the loss carries a gradient ({s} is unused, or a "
            "stop-gradient cuts it: detach, no_grad, a non-reparameterised .sample())",
    "unreached": "the loss does not depend on {s} through autograd at all (no path from {s} to L)",
    "detached": "{s} carries no gradient in train mode (computed under no_grad, detached, or a .sample())",
    "term_detached": "the term itself has no grad_fn (see loss.alive), so it reaches nothing, {s} included",
}


def judge_reaches_symbol(context: CheckContext, loss_name: str, symbol: str, step: int) -> CheckResult:
    element, where = f"loss {loss_name}", loss_terms_where(context)
    expected = f"non-zero dL_{loss_name}/d{symbol} at step {step}"
    gradient = symbol_gradients(context, step).get(loss_name, {}).get(symbol)
    if gradient is None:
        return failed("loss.reaches", element, expected, f"matched nothing: `loss_terms` returned no '{loss_name}'",
                      fix="return the term (see loss.present)", where=where)
    if gradient.status == "alive":
        return passed("loss.reaches", element, expected, f"|dL_{loss_name}/d{symbol}| = {gradient.norm:.3g} "
                      f"over {batches_phrase(context)}", where=where)
    return failed("loss.reaches", element, expected, _WHY_ZERO[gradient.status].format(s=symbol),
                  fix=f"remove the detach/no_grad between {symbol} and {loss_name} (for a sample: `.rsample()`), or "
                  "correct `reaches` if the design says otherwise", where=where)


def judge_reaches_params(context: CheckContext, loss_name: str, target: Target, step) -> CheckResult:
    element, where = f"loss {loss_name}", Where()
    expected = f"non-zero gradient of {loss_name} on {target.label} at step {step.step}"
    if target.missing:
        return failed("loss.reaches", element, expected, f"matched nothing: {target.missing}",
                      fix="correct the parameter name (see model.named_parameters())", where=where)
    norm, reached, trainable = param_norm(step, loss_name, target.params)
    if not trainable:
        return failed("loss.reaches", element, expected, f"matched nothing: {target.label} are all frozen",
                      fix="make them trainable, or drop the rule", where=where)
    if norm > 0:
        return passed("loss.reaches", element, expected,
                      f"|g_{loss_name}| = {norm:.3g} on {reached}/{trainable} parameter tensors", where=where)
    return failed("loss.reaches", element, expected, f"zero gradient on all {trainable} trainable tensors of "
                  f"{target.label}", fix="remove the detach/no_grad between them and the loss", where=where)


class GradientRuleCheck(Check):
    ids = ("loss.avoids", "params.frozen", "gradient.straight_through")
    explanations = {
        "loss.avoids": (
            "The loss has exactly zero gradient on each target its `avoids` lists: a component's or a parameter "
            "pattern's trainable parameters (frozen ones count as avoided), or a symbol (dL/d symbol == 0, read "
            "on the symbol's real tensor). It states stop-gradient designs: BYOL's EMA target, a frozen bias "
            "model, a VQ-VAE commitment loss that must not move the codebook. Measured with autograd on the real "
            "model at the loss's step over `gradients.batches` batches. Fix: put the target behind "
            "`.detach()` / `torch.no_grad()` for this term, or freeze it."
        ),
        "params.frozen": (
            "Every parameter of each component or parameter pattern in `gradients.frozen` has requires_grad=False "
            "(a pre-trained bias model, an EMA target network): the optimiser never sees it. A stop-gradient "
            "alone is not enough: a trainable parameter with no gradient still decays under weight decay. "
            "Fix: `module.requires_grad_(False)` after loading its weights."
        ),
        "gradient.straight_through": (
            "For each straight-through rule of a loss, dL/d input equals dL/d output (relative `tolerance`): the "
            "estimator's backward is the identity from its output to its input (VQ-VAE's z_e + sg(z_q - z_e)). "
            "A missing estimator (the decoder reads z_q) or one written the wrong way round (z_q + sg(z_e - z_q)) "
            "sends no gradient to the input. Fix: return `input + (quantised - input).detach()`."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.gradients.frozen) or any(loss.avoids or loss.straight_through for loss in spec.losses.values())

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        yield from self._frozen(context)
        steps = measurement(context) if any(l.avoids for l in context.spec.losses.values()) else {}
        for name, loss in context.spec.losses.items():
            for target_name in loss.avoids:
                yield self._avoids(context, name, loss, resolve_target(context, target_name), steps)
            for rule in loss.straight_through:
                yield self._straight_through(context, name, loss, rule)

    def _frozen(self, context: CheckContext) -> Iterable[CheckResult]:
        parameters = dict(context.model.named_parameters())
        for target_name in context.spec.gradients.frozen:
            target = resolve_target(context, target_name)
            element, expected = f"frozen {target_name}", f"every parameter of {target.label} has requires_grad=False"
            if target.missing:
                yield failed("params.frozen", element, expected, f"matched nothing: {target.missing}",
                             fix="correct the module path or parameter name")
                continue
            trainable = [p for p in target.params if parameters[p].requires_grad]
            if trainable:
                yield failed("params.frozen", element, expected,
                             f"{len(trainable)}/{len(target.params)} parameter tensors are trainable: "
                             f"{', '.join(trainable[:4])}{' ...' if len(trainable) > 4 else ''}",
                             fix=f"call requires_grad_(False) on {target.label} after loading it",
                             details={"trainable": trainable})
            else:
                yield passed("params.frozen", element, expected, f"all {len(target.params)} parameter tensors frozen")

    def _avoids(self, context, name, loss, target: Target, steps) -> CheckResult:
        element = f"loss {name}"
        if target.symbol is not None:
            expected = f"dL_{name}/d{target.symbol} == 0 (stop-gradient) at step {loss.step}"
            gradient = symbol_gradients(context, loss.step).get(name, {}).get(target.symbol)
            if gradient is None:
                return failed("loss.avoids", element, expected, f"matched nothing: `loss_terms` returned no '{name}'",
                              fix="return the term (see loss.present)")
            if gradient.status == "alive":
                return failed("loss.avoids", element, expected,
                              f"|dL_{name}/d{target.symbol}| = {gradient.norm:.3g}: the loss reaches {target.symbol}",
                              fix=f"detach {target.symbol} where {name} reads it", where=loss_terms_where(context))
            return passed("loss.avoids", element, expected, f"dL_{name}/d{target.symbol} = 0 ({gradient.status})")
        step = steps[loss.step]
        expected = f"zero gradient of {name} on {target.label} at step {loss.step}"
        if target.missing:
            return failed("loss.avoids", element, expected, f"matched nothing: {target.missing}",
                          fix="correct the module path or parameter name")
        norm, reached, trainable = param_norm(step, name, target.params)
        if norm > 0:
            return failed("loss.avoids", element, expected,
                          f"|g_{name}| = {norm:.3g} on {reached}/{trainable} trainable parameter tensors of "
                          f"{target.label}: the loss trains what the design keeps out of its reach",
                          fix=f"compute {name} from {target.label}'s output under torch.no_grad() / .detach() "
                          "(and freeze it if it must never train)", where=loss_terms_where(context),
                          details={"norm": norm})
        frozen = len(target.params) - trainable
        return passed("loss.avoids", element, expected,
                      f"no gradient on {target.label} ({trainable} trainable tensors at 0, {frozen} frozen)")

    def _straight_through(self, context, name, loss, rule) -> CheckResult:
        import math

        element = f"loss {name}"
        expected = (f"dL_{name}/d{rule.input} == dL_{name}/d{rule.output} within {rule.tolerance:g} (a straight-"
                    f"through estimator from {rule.output} back to {rule.input}) at step {loss.step}")
        table = straight_through_gradients(context, loss.step, name, rule)
        if table is None:
            return failed("gradient.straight_through", element, expected,
                          f"matched nothing: `loss_terms` returned no '{name}'", fix="return the term")
        into_output, into_input, difference = table
        found = (f"|dL/d{rule.output}| = {into_output:.3g}, |dL/d{rule.input}| = {into_input:.3g}, "
                 f"|difference| = {difference:.3g}")
        if into_output > 0 and math.isfinite(difference) and difference <= rule.tolerance * into_output:
            return passed("gradient.straight_through", element, expected, found)
        why = (f"no gradient reaches {rule.input} through {rule.output}: the estimator is missing or written "
               f"the wrong way round" if into_input == 0 else "the gradient is changed on the way")
        if into_output == 0:
            why = f"the loss has no gradient on {rule.output}"
        return failed("gradient.straight_through", element, expected, f"{why} ({found})",
                      fix=f"compute {rule.output} = {rule.input} + (quantised - {rule.input}).detach()",
                      where=loss_terms_where(context))


def straight_through_gradients(context: CheckContext, step: int, loss_name: str, rule):
    """(|dL/d output|, |dL/d input|, |dL/d input - dL/d output|) on batch 0, or None without the term."""
    return context.memo(f"straight_through:{step}:{loss_name}:{rule.output}:{rule.input}",
                        lambda: _measure_straight_through(context, step, loss_name, rule))


def _measure_straight_through(context, step, loss_name, rule):
    import torch

    from alignguard.checks.running import runner, user_forward
    from alignguard.modelfile.loader import forward_inputs

    spec, batch = context.spec, context.batch(0, step=step)
    with user_forward(context):
        seen = runner(context).run(forward_inputs(context.model, batch), train=True, seed=spec.entry_points.seed,
                                   observe=[rule.output, rule.input], whole=True)
    terms = context.model_file.loss_terms_at(context.model, batch, seen["__outputs__"], step)
    term = terms.get(loss_name)
    if term is None:
        return None
    grads = []
    for symbol in (rule.output, rule.input):
        tensor = seen[symbol]
        if not tensor.requires_grad or term.grad_fn is None:
            grads.append(torch.zeros_like(spec.symbols[symbol].select(tensor)))
            continue
        (grad,) = torch.autograd.grad(term.reshape(()), [tensor], retain_graph=True, allow_unused=True)
        grads.append(spec.symbols[symbol].select(grad if grad is not None else torch.zeros_like(tensor)))
    out, into = grads
    if out.shape != into.shape:
        return float(out.norm()), float(into.norm()), float("inf")
    return float(out.norm()), float(into.norm()), float((out - into).norm())
