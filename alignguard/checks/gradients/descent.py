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
and parameters and buffers are restored bit for bit afterwards.

A step too long for the model's curvature also moves the ratio off 1 (a deep BatchNorm network
gives +0.5 at ε = 1e-3, +0.99 at 1e-5), but curvature fades as the step shrinks and a wrong
gradient does not. So a term that misses is measured again at ε/10, ε/100, ε/1000 and judged by
the shortest step measured, the one closest to the derivative. Shrinking stops as soon as the
ratio is within tolerance, when a shorter step brought it no closer to 1 (a reversal stays at −1:
one extra step), or when float rounding would dominate the shorter step (see `_rounding`).

One pair of forwards serves every term. Every term's value comes from the same forward, so the
terms are first measured together along one direction d shared by all of them, built per
parameter tensor p from their gradients, d_p = Σ_k w_pk g_kp, with weights that make each term see
every parameter as it sees its own gradient: g_kp·d_p = |g_kp|²/|g_k| (`shared_direction.py`, solved
on the per-parameter Gram blocks of the first batch's gradients). Along d, term k's measured change
is compared with g_k·(δ₊ − δ₋), and a gradient wrong by a factor on any set of parameter tensors (a
reversal layer upstream of some modules, a reversed or scaled term) gives the same ratio as along
ĝ_k. A term that passes along d is judged there; a term that misses along d is measured again
along its own ĝ_k, as described above, and judged there, so every failure (and the ratios it
shows) is ĝ_k's. Terms the weights cannot fit within tolerance/100 (gradients linearly dependent
on a parameter in a ratio their norms do not have), a term whose change along d is below the
value's float rounding at ε while it would not be along ĝ_k, and a term that declares parameters
out (`reversed_on`, `straight_through`: d would move them) are measured along ĝ_k from the start.

Cost: two forwards without autograd per step length for all the terms together (`loss_terms`
called at every step the terms are measured at, on the same outputs); two more per step length for
a term measured along ĝ_k; none for a term whose value reads no output of forward (an L2 over the
weights: see `_output_free`) where only such terms are left to measure, which runs only
`loss_terms`. The gradients are the gradient measurement's first batch (same seed, batch and
train-mode forward): the check measures its slopes there, through `first_batch_hook`, before the
later batches are added, so it runs no forward and backward pass of its own and copies no gradient.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.errors import AlignguardError
from alignguard.checks.gradients.measurement import conflict_step, loss_terms_where, measurement
from alignguard.results import CheckResult, failed, passed
from alignguard.seeding import manual_seed

ID = "loss.descent"
SHORTER = (10, 100, 1000)  # the divisors of ε a term that misses is measured again at
CONVERGING = 0.75  # a shorter step must cut the miss |ratio − 1| to at most this share of the last one
ROUNDING_SHARE = 0.25  # rounding θ ± εĝ to the parameters' dtype may change the step by at most this share
NOISE_MARGIN = 100.0  # the change the gradient predicts must be ≥ NOISE_MARGIN/tolerance ulps of the value
NO_CLOSER = "no closer"  # why shrinking stopped: the shorter step did not bring the ratio closer to 1


class Slope(NamedTuple):
    """One central difference: at step length `epsilon`, measured and predicted change of L_i."""

    epsilon: float
    change: float  # L(θ+δ₊) − L(θ+δ₋)
    predicted: float  # g·(δ₊ − δ₋)
    span: float  # |δ₊ − δ₋|

    @property
    def ratio(self) -> float:
        return self.change / self.predicted if self.predicted else float("nan")

    @property
    def slope(self) -> float:
        return self.change / self.span if self.span else float("nan")


class LossDescentCheck(Check):
    ids = (ID,)
    explanations = {
        ID: (
            "For every term `loss_terms` returns (the unexpected ones included) that has a gradient, autograd's "
            "gradient g_i must be the slope of the term's value: along ĝ_i = g_i/|g_i| over the trainable "
            "parameters, the central difference (L_i(θ+εĝ_i) − L_i(θ−εĝ_i))/2ε must equal |g_i| within "
            "`gradients.descent_tolerance` (relative; ε is `gradients.descent_epsilon`). It runs on the real "
            "model in train mode on one example batch at each loss's measured step, with the random state "
            "re-seeded identically for every forward, and restores the parameters exactly. All terms are first "
            "measured together along one direction d shared by them (one pair of forwards for every term), built per "
            "parameter tensor from their gradients so that each term weighs every parameter tensor as along its own "
            "ĝ_i (g_i,p·d_p = |g_i,p|²/|g_i|): along d the ratio (measured change over g_i·2εd) must be 1 within the "
            "same tolerance, and a gradient wrong by a factor on any set of parameter tensors gives the same ratio "
            "there as along ĝ_i. A term that misses along d, one the shared weights cannot fit, and one that declares "
            "parameters out is measured and judged along its own ĝ_i, so a failure always shows ĝ_i's ratios. A step too long for "
            "the model's curvature also moves the ratio off 1 (a deep BatchNorm network: +0.5 at ε = 1e-3, +0.99 "
            "at 1e-5), so a term that misses is measured again at ε/10, ε/100, ε/1000 and judged at the shortest "
            "step measured, the one closest to the derivative: it passes as soon as one is within tolerance. "
            "Shrinking stops early when a shorter step "
            "brings the ratio no closer to 1 (a wrong gradient's ratio does not depend on ε) or when float "
            "rounding would dominate: rounding θ ± εĝ_i to the parameters' dtype changes the step by more than "
            "25 %, or the predicted change 2ε|g_i| is under 100/tolerance ulps of |L_i|. The failure lists the "
            "ratio at every ε tried. Only a term that misses pays for the shorter steps. A term whose gradient "
            "is reversed (value kept) gives −1 at every ε; a gradient-reversal layer inside a term (the legacy "
            "L_domain) gives a mismatch that does not shrink: minimising the total maximises that term, which "
            "shares and cosines cannot see. It checks one direction per term, at one point: a custom backward "
            "that is wrong only orthogonally to the direction the term passes along (d, or g_i) passes; one wrong by "
            "a factor on whole parameter tensors gives the same ratio along both. Parameters a loss declares `reversed_on` (a gradient-reversal "
            "layer by design) are left out here and judged by gradient.direction; for a term that declares "
            "`straight_through`, the parameters its estimator's `input` symbols depend on are left out (their "
            "gradient is not a slope by design; gradient.straight_through judges it) and the rest (a VQ-VAE's "
            "decoder) are judged here, so a reversed reconstruction term still fails. Fix: remove the gradient "
            "reversal / custom backward from the term, or move the adversary into its own optimiser step; a term "
            "whose ratios approach 1 but miss at the shortest step is merely that curved: raise the tolerance."
        )
    }

    def applies(self, spec) -> bool:
        return bool(spec.losses) and spec.gradients.descent

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        from alignguard.gradients.measure import trainable_parameters

        where = loss_terms_where(context)
        if not trainable_parameters(context.model):
            yield failed(ID, "losses", "autograd gradients that are the slopes of the loss values",
                         "matched nothing: the model has no trainable parameters",
                         fix="build the model with trainable parameters", where=where)
            return
        measurement(context)  # loss.descent is measured on its first batch (see `first_batch_hook`)
        found = context.memo(ID, _Found)
        if found.error is not None:
            raise found.error
        if not found.judged:
            yield failed(ID, "losses", "autograd gradients that are the slopes of the loss values",
                         "matched nothing: no loss term has a gradient (see loss.alive)",
                         fix="make the design's loss terms alive first", where=where)
            return
        for name, step, norm, value, slopes, stop, shared in found.judged:
            if slopes is None:
                loss = context.spec.losses.get(name)
                why = (f"L_{name} declares a straight-through estimator: its gradient is not the slope of a step "
                       "function by design (judged by gradient.straight_through)" if loss and loss.straight_through
                       else f"all of L_{name}'s gradient lies on parameters declared `reversed_on` (judged by "
                       "gradient.direction)")
                yield passed(ID, f"loss {name}", "the gradient is the slope, where the design does not say otherwise",
                             why, where=where)
                continue
            yield self._judge(context, name, step, norm, value, slopes, stop, where, shared)

    def measure_first_batch(self, context, first: dict, outputs: Any = None) -> list[tuple]:
        """[(name, step, |g|, value, slopes, why shrinking stopped, "shared" if judged along the direction
        the terms share, else None)] of every alive term, from the
        gradient measurement's first batch (`first`: {step: (TermGradients, {name: gradient per
        parameter})}; `outputs`: its forward's outputs, detached, or None); slopes None where every
        parameter with a gradient is declared otherwise."""
        from alignguard.gradients.measure import norm64, trainable_parameters

        spec, model = context.spec, context.model
        named = trainable_parameters(model)
        params = [p for _, p in named]
        terms_step = self._steps(context)
        measured: list[tuple[str, int, Any, float, float]] = []  # (name, step, gradient per parameter, value, roundoff)
        for step in sorted(first):
            grads, sums = first[step]
            for name in grads.names:
                if terms_step.get(name, conflict_step(spec)) == step and grads.status[name] == "alive":
                    measured.append((name, step, sums[name], grads.values[name], _roundoff(params, grads.dtypes[name])))
        from alignguard.checks.gradients.shared_direction import shared as judged_along_d

        judged = []
        with _restored(model) as saved, _train_mode(model):
            origin = [saved[id(p)] for p in params]  # θ as `_restored` copied it: no second copy
            self._saved_buffers = [(b, saved[id(b)]) for b in model.buffers()]  # what each forward's buffers go back to
            self._stale = outputs
            entries = []  # (name, step, gradient judged, value, roundoff, declared: some parameter left out)
            for name, step, grad, value, roundoff in measured:
                pieces = self._undeclared(context, name, named, grad)
                declared = any(a is not None and b is None for a, b in zip(grad, pieces))
                entries.append((name, step, pieces, value, roundoff, declared))
            found_free: list[set] = []  # the output-free terms, found once, only if a measurement can use them

            def free_terms() -> set:
                if not found_free:
                    found_free.append(self._output_free(context, measured, outputs))
                return found_free[0]

            shared = judged_along_d(self, context, params, origin,
                                    [e for e in entries if not e[5] and _nonzero(e[2])], free_terms)
            for name, step, pieces, value, roundoff, _ in entries:
                if not _nonzero(pieces):
                    judged.append((name, step, 0.0, value, None, "", None))
                    continue
                if (name, step) in shared:
                    judged.append((name, step, *shared[(name, step)]))
                    continue
                free = free_terms()
                norm = norm64(pieces)
                slopes, stop = self._slopes(context, params, name, step, pieces, value, roundoff, origin, norm,
                                            stale=outputs if (name, step) in free else None)
                if (name, step) in free and not self._passes(context, slopes):
                    # judged only with forwards: a miss may come from state forward leaves on the model
                    slopes, stop = self._slopes(context, params, name, step, pieces, value, roundoff, origin, norm)
                judged.append((name, step, norm, value, slopes, stop, None))
        self._saved_buffers = self._stale = None  # the copies `_restored` made: freed with it
        return judged

    def _changes(self, context, moved, held, keys: list[tuple[str, int]], stale: Any = None) -> list[float]:
        """[L_k(θ+δ₊) − L_k(θ+δ₋)] in float64 for every (term, step) of `keys`, from one forward per
        sign (per step, when the example batch depends on it), then θ again."""
        value = {}
        try:
            for sign, along in held.items():
                moved.hold(along)
                with _buffers_kept(context.model, getattr(self, "_saved_buffers", None)):
                    value[sign] = self._values(context, keys, stale)
        finally:
            moved.restore()
        return [a - b for a, b in zip(value[1.0], value[-1.0])]

    def _values(self, context, keys: list[tuple[str, int]], stale: Any = None) -> list[float]:
        """The terms' values at the parameters held now: `loss_terms` at every step of `keys`, in
        step order as the gradient measurement calls it, on one forward (one per step when the
        example batch depends on the step; none with `stale` outputs)."""
        steps = sorted({step for _, step in keys})
        terms: dict[int, dict] = {}
        outputs = stale
        if stale is not None:
            manual_seed(context.spec.entry_points.seed)
        for step in steps:
            if outputs is None or (stale is None and context.model_file.step_dependent and step != steps[0]):
                outputs = self._forward(context, step)
            terms[step] = self._terms(context, outputs, step)
        return [_scalar(terms[step].get(name)) for name, step in keys]

    def _output_free(self, context, measured: list, outputs: Any) -> set[tuple[str, int]]:
        """The (term, step)s whose value reads none of forward's outputs: `loss_terms` given the first
        batch's outputs with every floating tensor replaced by noise, and another random state, returns
        bit for bit the value the measurement saw (an L2 over the weights). Their evaluations at θ ± δ
        skip the forward and pass the first batch's outputs instead (two forwards less per step
        length); a term so measured that misses is measured again with forwards before it is judged,
        so a term that reads state forward leaves on the model cannot fail for this."""
        import torch

        if outputs is None or not measured:
            return set()
        tensors = _tensors(outputs)
        if not tensors or any(not t.is_floating_point() for t in tensors):
            return set()  # an integer output (indices) cannot be replaced by noise
        generator = torch.Generator().manual_seed(context.spec.entry_points.seed + 7919)
        noise = _replaced(outputs, lambda t: (torch.randn(t.shape, generator=generator, dtype=t.dtype) * 3 + 1)
                          .to(t.device))
        free = set()
        for step in sorted({step for _, step, *_ in measured}):
            manual_seed(context.spec.entry_points.seed + 7919)
            try:
                with torch.no_grad():
                    terms = self._terms(context, noise, step)
            except Exception:  # noqa: BLE001 - noise a term cannot take (a BCE on probabilities): it reads them
                continue
            for name, at, _, value, _ in measured:
                term = terms.get(name) if at == step else None
                if isinstance(term, torch.Tensor) and term.numel() == 1 and math.isfinite(value) \
                        and float(term.detach().reshape(())) == value:
                    free.add((name, step))
        return free

    def _passes(self, context, slopes: list[Slope]) -> bool:
        return abs(slopes[-1].ratio - 1.0) <= context.spec.gradients.descent_tolerance

    # ---- measuring ----------------------------------------------------------------------
    def _undeclared(self, context, name, named, grad: list):
        """The gradient (one piece per parameter, None: zero) with the parameters the loss declares
        `reversed_on` left out (gradient.direction judges those)."""
        loss = context.spec.losses.get(name)
        if loss is not None and loss.straight_through:
            # Upstream of the estimator the gradient is not the slope by design (gradient.straight_through
            # judges it); downstream (a VQ-VAE's decoder) it is, and a reversed term shows there.
            upstream = _upstream_of(context, [rule.input for rule in loss.straight_through], named)
            return [None if out else g for g, out in zip(grad, upstream)]
        if loss is None or not loss.reversed_on:
            return grad
        from alignguard.checks.gradients.direction import group_covers

        covered = group_covers(context, loss.reversed_on, [n for n, _ in named])
        return [None if out else g for g, out in zip(grad, covered)]

    def _steps(self, context) -> dict[str, int]:
        """The step each declared term is measured at; other terms use the conflict step."""
        return {name: loss.step for name, loss in context.spec.losses.items()}

    def _forward(self, context, step: int) -> Any:
        """forward on example batch 0 (at `step`) under the spec's seed (the gradient measurement's first batch)."""
        import torch

        manual_seed(context.spec.entry_points.seed)
        return context.model_file.forward(context.model, context.batch(0, step=step),
                                          on="the example batch (train mode)")

    def _terms(self, context, outputs, step: int) -> dict:
        return context.model_file.loss_terms_at(context.model, context.batch(0, step=step), outputs, step)

    def _slopes(self, context, params, name, step, pieces, value, roundoff, origin=None, norm=None,
                stale: Any = None) -> tuple[list[Slope], str]:
        """The central difference at ε and, while it misses, at shorter steps; and why shrinking stopped.

        The spec's ε is always measured; a shorter step only while the last one missed, brought the
        ratio closer to 1, and float rounding would not dominate it ("" when none of these stopped it).
        With `stale` (outputs of a term that reads none, see `_output_free`) no forward is run.
        """
        from alignguard.gradients.measure import norm64

        # `pieces`: the gradient per parameter (None: zero), float32; no float64 copy of it is made.
        norm = norm if norm is not None else norm64(pieces)
        origin = origin if origin is not None else [p.detach().clone() for p in params]
        from alignguard.checks.gradients.perturb import Moved

        moved = Moved(params, origin, [pieces])
        try:  # `along` leaves θ + δ₊ held: θ again whichever way the steps end
            return self._steps_along(context, moved, name, step, norm, value, roundoff, stale)
        finally:
            moved.restore()

    def _steps_along(self, context, moved, name, step, norm, value, roundoff, stale) -> tuple[list[Slope], str]:
        """`_slopes`' steps along ĝ, the direction `moved` holds."""
        tolerance = context.spec.gradients.descent_tolerance
        epsilon = context.spec.gradients.descent_epsilon
        slopes: list[Slope] = []
        for divisor in (1, *SHORTER):
            # θ ± step·g is recomputed where it is needed (deterministically, so identically) rather
            # than held: two whole-model copies less (0.4 GB on the DeepSEA CNN).
            held = {sign: sign * epsilon / divisor / norm for sign in (1.0, -1.0)}
            (predicted,), span = moved.along(held[1.0], held[-1.0])
            below = _rounding(epsilon / divisor, span, predicted, value, roundoff, tolerance)
            if below and divisor > 1:
                return slopes, f"no shorter step: ε = {epsilon / divisor:g} {below}"
            stop = f"ε = {epsilon:g} itself {below}" if below else ""
            change = self._change(context, moved, held, name, step, stale)
            slopes.append(Slope(epsilon / divisor, change, predicted, span))
            if stop:  # the spec's own ε is already below the floor: say so
                return slopes, stop
            miss = [abs(s.ratio - 1.0) for s in slopes]
            if miss[-1] <= tolerance:
                return slopes, ""
            if len(miss) > 1 and not _closer(miss[-1], miss[-2]):
                return slopes, NO_CLOSER
        return slopes, ""

    def _change(self, context, moved, held, name: str, step: int, stale: Any = None) -> float:
        """L(θ+δ₊) − L(θ+δ₋) in float64, the parameters holding θ + δ± (δ± = held[±1]·g) in turn, then θ again.

        δ± are the perturbations the parameters actually hold after rounding to their dtype, so
        the prediction g·(δ₊ − δ₋) is exact to first order whatever that rounding did.
        """
        value = {}
        try:
            for sign, along in held.items():
                moved.hold(along)
                with _buffers_kept(context.model, getattr(self, "_saved_buffers", None)):
                    value[sign] = self._value(context, name, step, stale)
        finally:
            moved.restore()
        return value[1.0] - value[-1.0]

    def _value(self, context, name: str, step: int, stale: Any = None) -> float:
        if stale is not None:
            manual_seed(context.spec.entry_points.seed)
        outputs = self._forward(context, step) if stale is None else stale
        return _scalar(self._terms(context, outputs, step).get(name))

    # ---- judging ------------------------------------------------------------------------
    def _judge(self, context, name, step, norm, value, slopes: list[Slope], stop: str, where,
               shared: str | None = None) -> CheckResult:
        tolerance = context.spec.gradients.descent_tolerance
        epsilon = context.spec.gradients.descent_epsilon
        element = f"loss {name}"
        along = "d, the direction the terms share" if shared else f"ĝ_{name}"
        expected = (f"the gradient of L_{name} is the slope of L_{name}: (L(θ+εd) − L(θ−εd))/2ε = g_{name}·d "
                    f"within {tolerance:g} along d = ĝ_{name} or a direction the terms share (ε = {epsilon:g}, or a "
                    f"shorter step if ε is too long for the curvature; step {step})")
        last = slopes[-1]  # the shortest step measured: the one closest to the derivative
        ratio = last.ratio
        predicted = last.predicted / last.span if last.span else float("nan")
        details = {"step": step, "value": value, "grad_norm": norm, "slope": last.slope, "ratio": ratio,
                   "predicted_slope": predicted, "direction": shared or "own",
                   "epsilon": last.epsilon, "ratios": [[s.epsilon, s.ratio] for s in slopes]}
        places = max(3, math.ceil(-math.log10(tolerance)) + 1)  # enough digits to show a miss
        trail = ", ".join(f"{s.ratio:+.{places}f} at ε = {s.epsilon:g}" for s in slopes)
        found = (f"slope {last.slope:.4g} along {along}, where g_{name}·d = {predicted:.4g} (|g_{name}| = {norm:.4g}): "
                 f"ratio {trail}" if shared else
                 f"slope {last.slope:.4g} along ĝ_{name}, |g_{name}| = {norm:.4g}: ratio {trail}")
        if abs(ratio - 1.0) <= tolerance:
            if len(slopes) > 1:
                found += f"; the longer step{'s' if len(slopes) > 2 else ''} measured curvature, not the gradient"
            return passed(ID, element, expected, found, where=where, details=details)
        floor = f"; {stop}" if stop and stop != NO_CLOSER else ""
        if not math.isfinite(ratio):
            return failed(ID, element, expected,
                          f"L_{name} is not finite (or not returned) at θ ± ε{along.split(',')[0]} ({trail}{floor}): the "
                          "slope cannot be measured", fix="stabilise the term (clamp, an eps), or lower "
                          "`gradients.descent_epsilon`", where=where, details=details)
        converging = len(slopes) > 1 and stop != NO_CLOSER and ratio > 0
        if converging:
            return failed(ID, element, expected,
                          f"the slope of L_{name} approaches |g_{name}| as the step shrinks, as it would if ε were "
                          f"too long for the curvature, but still misses the tolerance at the shortest step "
                          f"measured ({found}{floor})",
                          fix="if the term is merely this curved, raise `gradients.descent_tolerance` (or lower "
                          "`gradients.descent_epsilon` while the float rounding floor allows); otherwise look for a "
                          f"custom backward in '{name}' that scales the gradient",
                          where=where, details=details)
        if ratio < 0:
            how = (f"moving along its gradient lowers L_{name}: the gradient is reversed, so minimising the total "
                   "maximises this term")
        else:
            how = ("a gradient-reversal / custom backward makes minimising the total maximise this term"
                   if ratio < 1 else "a custom backward scales the gradient away from the slope of the value")
        if len(slopes) > 1:
            found += "; a shorter step brings it no closer to 1, as it would if ε were only too long for the curvature"
        return failed(ID, element, expected,
                      f"the gradient of L_{name} is not the slope of L_{name}: {how} ({found}{floor})",
                      fix=f"remove the gradient reversal / custom autograd.Function from '{name}' (or its inputs); "
                      "an adversary belongs in its own optimiser step, not behind a reversed gradient in the total; "
                      "if the mismatch is intended, state it: `reversed_on` for a gradient-reversal layer "
                      "(judged by gradient.direction); for a straight-through estimator, declare `straight_through` "
                      "on the term (judged by gradient.straight_through) or waive loss.descent for it",
                      where=where, details=details)


@dataclass
class _Found:
    """What loss.descent measured on the gradient measurement's first batch(es), or the error it met."""

    judged: list = field(default_factory=list)
    error: Exception | None = None


def first_batch_hook(context: CheckContext) -> Callable[[dict], None] | None:
    """The gradient measurement's `on_first_batch` for loss.descent (None when the check does not apply).

    loss.descent needs one batch's per-term gradients on the real model: the measurement's first
    batch is that batch (same seed, same example batch, train mode), so the check measures its
    slopes there, before the later batches are added to the sums, and pays for no forward and
    backward pass of its own and holds no copy of the gradients. An error that is not the model
    file's (`AlignguardError`) is kept for the check to report, not raised in the measurement.
    """
    check = LossDescentCheck()
    if not check.applies(context.spec):
        return None

    def hook(first: dict, outputs: Any = None) -> None:
        found = context.memo(ID, _Found)
        if found.error is not None:
            return
        with context.timed(ID):
            try:
                found.judged += check.measure_first_batch(context, first, outputs)
            except AlignguardError:
                raise
            except Exception as exc:  # a bug in the check: reported as its error result
                found.error = exc

    return hook


def _scalar(term: Any) -> float:
    """A term's value in float64; NaN when it vanished as the parameters moved (judged as not finite)."""
    if term is None:
        return float("nan")
    return float(term.detach().double().reshape(()))


def _tensors(outputs: Any) -> list:
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs]
    values = outputs.values() if isinstance(outputs, dict) else outputs if isinstance(outputs, (list, tuple)) else ()
    return [t for v in values for t in _tensors(v)]


def _replaced(outputs: Any, new: Callable) -> Any:
    """`outputs` with every tensor t replaced by new(t), the containers rebuilt."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return new(outputs)
    if isinstance(outputs, dict):
        return {k: _replaced(v, new) for k, v in outputs.items()}
    if type(outputs) in (list, tuple):
        return type(outputs)(_replaced(v, new) for v in outputs)
    return outputs


def _closer(miss: float, previous: float) -> bool:
    """The shorter step's miss |ratio − 1| is finite and at most CONVERGING times the previous (finite) one."""
    return math.isfinite(miss) and (not math.isfinite(previous) or miss <= CONVERGING * previous)


def _nonzero(pieces) -> bool:
    return any(g is not None and bool(g.any()) for g in pieces)


def _roundoff(params, term_dtype) -> float:
    """Unit roundoff of the coarsest floating dtype among the parameters and the term's `term_dtype`."""
    import torch

    dtypes = {p.dtype for p in params if p.is_floating_point()} | {term_dtype}
    return max(torch.finfo(d).eps for d in dtypes if d.is_floating_point)


def _rounding(epsilon, span: float, predicted, value, roundoff, tolerance) -> str:
    """Why float rounding would dominate the central difference at this ε ("" if it would not).

    Two floors, both known before any forward. Rounding θ ± εĝ to the parameters' dtype must not
    change the step by more than ROUNDING_SHARE: below that the dtype's grid, not ĝ, decides where
    the parameters move (on the ResNet-50 benchmark: 13 % at ε = 1e-5, 48 % at 1e-6). And the change
    the gradient predicts must exceed the value's own rounding u·|L| by NOISE_MARGIN/tolerance (1000
    ulps at the default tolerance): a ResNet-50 forward's rounding moved L by 25 ulps of |L| (bce)
    to 180 (a term scaled by 1e-3: |L| understates the rounding of what it was computed from).
    """
    intended = 2 * epsilon
    if abs(span - intended) > ROUNDING_SHARE * intended:
        return (f"is below the parameters' float rounding (rounding θ ± εĝ to their dtype changes the step "
                f"{span / intended:.2f}x)")
    noise = roundoff * abs(value)
    if abs(predicted) < NOISE_MARGIN / tolerance * noise:
        return (f"is below the value's float rounding (the predicted change {abs(predicted):.2g} is under "
                f"{NOISE_MARGIN / tolerance:g} × u·|L| = {NOISE_MARGIN / tolerance * noise:.2g})")
    return ""


def _upstream_of(context, symbols: list[str], named) -> Any:
    """Per trainable parameter: do `symbols` depend on it through autograd (train mode, the probe rows)?
    Those are the parameters whose gradient reaches them only through a straight-through estimator."""
    import torch

    from alignguard.checks.running import probe_inputs, runner, user_forward

    params = [p for _, p in named]
    reached = [False] * len(params)
    with user_forward(context), torch.enable_grad():
        seen = runner(context).run(probe_inputs(context), train=True, seed=context.spec.entry_points.seed,
                                   observe=symbols, whole=True)
    for symbol in symbols:
        value = seen[symbol]
        if not (isinstance(value, torch.Tensor) and value.requires_grad):
            continue
        weights = torch.randn(value.shape, generator=torch.Generator().manual_seed(0)).to(value)
        grads = torch.autograd.grad((value * weights).sum(), params, allow_unused=True, retain_graph=True)
        reached = [r or (g is not None and bool(g.abs().sum() > 0)) for r, g in zip(reached, grads)]
    return reached


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
def _restored(model) -> Iterator[dict]:
    """Parameters and buffers restored bit for bit afterwards, whatever happens inside; yields
    {id(tensor): its saved copy} (the copies must not be written to)."""
    import torch

    saved = [(t, t.detach().clone()) for t in (*model.parameters(), *model.buffers())]
    try:
        yield {id(tensor): copy for tensor, copy in saved}
    finally:
        with torch.no_grad():
            if saved:
                torch._foreach_copy_([tensor for tensor, _ in saved], [copy for _, copy in saved])


@contextmanager
def _buffers_kept(model, saved: list | None = None) -> Iterator[None]:
    """A train-mode forward updates BatchNorm's running statistics: undo that after each one (back to
    `saved`, [(buffer, its value now)] when the caller holds copies already, one foreach copy)."""
    import torch

    if saved is not None:
        try:
            with torch.no_grad():
                yield
        finally:
            with torch.no_grad():
                if saved:
                    torch._foreach_copy_([b for b, _ in saved], [copy for _, copy in saved])
        return
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for buffer, copy in saved:
                buffer.copy_(copy)
