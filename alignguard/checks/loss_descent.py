"""loss.descent: each term's autograd gradient is the slope of the term's own value.

Shares and cosines read autograd's gradients and believe them. A gradient-reversal layer (the
legacy L_domain), a reversed term, or any custom backward that disagrees with the forward makes
autograd report a gradient that is not the slope of the value: the optimiser then maximises what
the loss dict says it minimises. The check compares the two on the real model, in train mode,
on one example batch, at the step each loss is measured at:

    predicted = g_i · Δ,   measured = L_i(θ + δ₊) − L_i(θ + δ₋),   δ± = ±ε ĝ_i (as stored in the
                                                                       parameters' own dtype)

with ĝ_i = g_i/|g_i| over the trainable parameters, so measured/2ε is the central-difference
slope along ĝ_i and predicted/2ε is |g_i|. The ratio must be 1 within `descent_tolerance`;
a reversed term gives −1. The random state is re-seeded identically for every forward (the
bottleneck's noise is the same ε each time), BatchNorm buffers are restored before each forward,
and parameters and buffers are restored bit for bit afterwards. Cost: one forward and backward,
then two forwards without autograd per term.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from alignguard.checks._gradient_measurement import conflict_step, loss_terms_where
from alignguard.checks.base import Check, CheckResult, failed, passed, register
from alignguard.checks.context import CheckContext
from alignguard.errors import ModelFileError

ID = "loss.descent"


@register
class LossDescentCheck(Check):
    ids = (ID,)
    order = 52
    explanations = {
        ID: (
            "For every term `loss_terms` returns (the unexpected ones included) that has a gradient, autograd's "
            "gradient g_i must be the slope of the term's value: along ĝ_i = g_i/|g_i| over the trainable "
            "parameters, the central difference (L_i(θ+εĝ_i) − L_i(θ−εĝ_i))/2ε must equal |g_i| within "
            "`gradients.descent_tolerance` (relative; ε is `gradients.descent_epsilon`). It runs on the real "
            "model in train mode on one example batch at each loss's measured step, with the random state "
            "re-seeded identically for every forward, and restores the parameters exactly. A term whose "
            "gradient is reversed (value kept) gives −|g_i|; a gradient-reversal layer inside a term (the legacy "
            "L_domain) gives a mismatch: minimising the total maximises that term, which shares and cosines "
            "cannot see. It checks one direction per term, at one point: a custom backward that is wrong only "
            "orthogonally to g_i passes. A straight-through estimator fails by design (its gradient is not "
            "the slope of a step function): waive it with its reason. Fix: remove the gradient reversal / "
            "custom backward from the term, or move the adversary into its own optimiser step."
        )
    }

    def applies(self, spec) -> bool:
        return bool(spec.losses) and spec.gradients.descent

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        from alignguard.gradients.measure import term_gradients, trainable_parameters

        spec, model = context.spec, context.model
        named = trainable_parameters(model)
        params = [p for _, p in named]
        where = loss_terms_where(context)
        if not params:
            yield failed(ID, "losses", "autograd gradients that are the slopes of the loss values",
                         "matched nothing: the model has no trainable parameters",
                         fix="build the model with trainable parameters", where=where)
            return
        terms_step = self._steps(context)
        measured: list[tuple[str, int, Any]] = []  # (name, step, flat gradient)
        values: dict[str, float] = {}
        with _restored(model), _train_mode(model):
            outputs = self._forward(context)
            for step in sorted(set(terms_step.values()) | {conflict_step(spec)}):
                terms = self._terms(context, outputs, step)
                mine = {k: v for k, v in terms.items() if terms_step.get(k, conflict_step(spec)) == step}
                if not mine:
                    continue
                grads = term_gradients(mine, params)
                for i, name in enumerate(grads.names):
                    values[name] = grads.values[name]
                    if grads.status[name] == "alive":
                        measured.append((name, step, grads.grads[i].double()))
            del outputs
            results = [self._slope(context, params, name, step, g) for name, step, g in measured]
        if not measured:
            yield failed(ID, "losses", "autograd gradients that are the slopes of the loss values",
                         "matched nothing: no loss term has a gradient (see loss.alive)",
                         fix="make the design's loss terms alive first", where=where)
            return
        for (name, step, grad), (measured_change, predicted, span) in zip(measured, results):
            yield self._judge(context, name, step, float(grad.norm()), values[name],
                              measured_change, predicted, span, where)

    # ---- measuring ----------------------------------------------------------------------
    def _steps(self, context) -> dict[str, int]:
        """The step each declared term is measured at; other terms use the conflict step."""
        return {name: loss.step for name, loss in context.spec.losses.items()}

    def _forward(self, context) -> Any:
        """forward on example batch 0 under the spec's seed (the gradient measurement's first batch)."""
        import torch

        from alignguard.modelfile.loader import _user_frame, forward_inputs

        torch.manual_seed(context.spec.entry_points.seed)
        try:
            return context.model(**forward_inputs(context.model, context.batch(0)))
        except Exception as exc:
            raise ModelFileError(f"the model's forward raised {type(exc).__name__}: {exc}",
                                 where=_user_frame(exc, context.model_file.path),
                                 fix="make forward run on the example batch in train mode") from None

    def _terms(self, context, outputs, step: int) -> dict:
        from alignguard.modelfile.loader import _user_frame

        function = context.model_file.loss_terms
        try:
            terms = function(context.model, context.batch(0), outputs, step)
        except Exception as exc:
            raise ModelFileError(f"`{function.__name__}(model, batch, outputs, step={step})` raised "
                                 f"{type(exc).__name__}: {exc}", where=_user_frame(exc, context.model_file.path),
                                 fix="make it return the weighted loss terms for any step") from None
        if not isinstance(terms, dict):
            raise ModelFileError(f"`{function.__name__}` returned {type(terms).__name__}, not a dict of named loss "
                                 "terms", where=str(loss_terms_where(context)),
                                 fix="return {'bce': ..., 'kl': ...}: each weighted term as a scalar tensor")
        return terms

    def _slope(self, context, params, name: str, step: int, grad) -> tuple[float, float, float]:
        """(measured L(θ+δ₊) − L(θ+δ₋), predicted g·(δ₊ − δ₋), |δ₊ − δ₋|), all in float64.

        δ± are the perturbations the parameters actually hold after rounding to their dtype, so
        the prediction is exact to first order whatever that rounding did.
        """
        import torch

        epsilon = context.spec.gradients.descent_epsilon
        sizes = [p.numel() for p in params]
        direction = (grad / grad.norm()).split(sizes)
        origin = [p.detach().double().reshape(-1).clone() for p in params]
        held, value = {}, {}
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, start, d in zip(params, origin, direction):
                    p.copy_((start + sign * epsilon * d.to(start.device)).reshape(p.shape))
                held[sign] = torch.cat([(p.detach().double().reshape(-1) - start).cpu()
                                        for p, start in zip(params, origin)])
                with _buffers_kept(context.model):
                    value[sign] = self._value(context, name, step)
        with torch.no_grad():
            for p, start in zip(params, origin):
                p.copy_(start.reshape(p.shape))
        span = held[1.0] - held[-1.0]
        return value[1.0] - value[-1.0], float(grad.cpu() @ span), float(span.norm())

    def _value(self, context, name: str, step: int) -> float:
        outputs = self._forward(context)
        term = self._terms(context, outputs, step).get(name)
        if term is None:
            return float("nan")  # the term vanished when the parameters moved: judged as not finite
        return float(term.detach().double().reshape(()))

    # ---- judging ------------------------------------------------------------------------
    def _judge(self, context, name, step, norm, value, change, predicted, span, where) -> CheckResult:
        tolerance = context.spec.gradients.descent_tolerance
        epsilon = context.spec.gradients.descent_epsilon
        element = f"loss {name}"
        expected = (f"the gradient of L_{name} is the slope of L_{name}: (L(θ+εĝ) − L(θ−εĝ))/2ε = |g_{name}| "
                    f"within {tolerance:g} (ε = {epsilon:g}, step {step})")
        ratio = change / predicted if predicted else float("nan")
        slope = change / span if span else float("nan")
        details = {"step": step, "value": value, "grad_norm": norm, "slope": slope, "ratio": ratio,
                   "epsilon": epsilon}
        found = f"slope {slope:.4g} along ĝ_{name}, |g_{name}| = {norm:.4g} (ratio {ratio:+.3f})"
        if abs(ratio - 1.0) <= tolerance:
            return passed(ID, element, expected, found, where=where, details=details)
        if ratio != ratio:
            return failed(ID, element, expected,
                          f"L_{name} is not finite (or not returned) at θ ± εĝ_{name} (ε = {epsilon:g}): the "
                          "slope cannot be measured", fix="stabilise the term (clamp, an eps), or lower "
                          "`gradients.descent_epsilon`", where=where, details=details)
        if ratio < 0:
            how = (f"moving along its gradient lowers L_{name}: the gradient is reversed, so minimising the total "
                   "maximises this term")
        else:
            how = ("a gradient-reversal / custom backward makes minimising the total maximise this term"
                   if ratio < 1 else "a custom backward scales the gradient away from the slope of the value")
        return failed(ID, element, expected,
                      f"the gradient of L_{name} is not the slope of L_{name}: {how} ({found})",
                      fix=f"remove the gradient reversal / custom autograd.Function from '{name}' (or its inputs); "
                      "an adversary belongs in its own optimiser step, not behind a reversed gradient in the total; "
                      "if the mismatch is intended (a straight-through estimator), waive loss.descent for this term",
                      where=where, details=details)


@contextmanager
def _train_mode(model) -> Iterator[None]:
    """Train mode, the RNG forked (each forward seeds it), the mode restored afterwards."""
    import torch

    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        model.train(was_training)


@contextmanager
def _restored(model) -> Iterator[None]:
    """Parameters and buffers restored bit for bit afterwards, whatever happens inside."""
    import torch

    saved = [(t, t.detach().clone()) for t in (*model.parameters(), *model.buffers())]
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, copy in saved:
                tensor.copy_(copy)


@contextmanager
def _buffers_kept(model) -> Iterator[None]:
    """A train-mode forward updates BatchNorm's running statistics: undo that after each one."""
    import torch

    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for buffer, copy in saved:
                buffer.copy_(copy)
