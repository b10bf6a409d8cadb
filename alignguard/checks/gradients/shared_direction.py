"""loss.descent's shared direction: every term measured together along one direction d.

Every term's value comes from the same forward, so one pair of forwards per step length along one
direction d serves every term. d is built per parameter tensor p from the terms' gradients,
d_p = Σ_k w_pk g_kp, with weights that make each term see every parameter as it sees its own
gradient (`shared_weights`); a term that passes along d is judged there, any other is measured along
its own gradient by `LossDescentCheck` (see `descent`'s module docstring for the whole argument).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from alignguard.checks.gradients.descent import NO_CLOSER, SHORTER, Slope, _closer, _rounding


def shared(check, context, params, origin, entries: list, free_terms: Callable[[], set]) -> dict:
    """{(name, step): (|g|, value, slopes, why shrinking stopped, "shared")} of the terms judged
    along one direction d shared by all of them (see `shared_weights`): one pair of forwards per
    step length serves every term, since every term's value comes from the same forward. A term
    the shared direction cannot judge exactly (its weights do not solve, or its predicted change
    along d is below the value's float rounding at the spec's ε) is left out: it is measured
    along its own gradient, as is a term that misses along d (its verdict and ratios are then
    exactly those of its own gradient) and a term that declares parameters out (`reversed_on`,
    `straight_through`: d would move them)."""
    import torch

    chosen = shared_group(context, params, entries)
    if chosen is None:
        return {}
    keep, weights, sub = chosen
    group = [entries[k] for k in keep]
    norms = sub.diagonal(dim1=1, dim2=2).sum(dim=0).clamp(min=0).sqrt().tolist()
    d_norm = float(torch.einsum("pk,pkl,pl->", weights, sub, weights).clamp(min=0).sqrt())
    slopes, stops = _shared_slopes(check, context, params, origin, group, norms, weights, d_norm, free_terms)
    # a term that misses along d is judged along its own gradient, as before sharing: its failure
    # (and the ratios it shows) is the one ĝ_k gives
    return {(e[0], e[1]): (norm, e[3], slopes[k], stops[k], "shared")
            for k, (e, norm) in enumerate(zip(group, norms)) if slopes[k] and check._passes(context, slopes[k])}


def shared_group(context, params, entries: list) -> tuple[list[int], Any, Any] | None:
    """(the entries judged along d, its weights, their Gram blocks), or None when fewer than two
    terms can share it: terms are left out, one at a time, until the weights fit every term left
    within tolerance/100 (see `shared_weights`)."""
    from alignguard.gradients.measure import gram_blocks

    if len(entries) < 2:
        return None
    blocks = gram_blocks([e[2] for e in entries], len(params))
    fits = lambda keep: max(shared_weights(blocks[:, keep][:, :, keep])[1])  # noqa: E731
    keep = list(range(len(entries)))
    while len(keep) >= 2 and fits(keep) > context.spec.gradients.descent_tolerance / 100:
        # least squares spreads a misfit over every term: leave out the term whose absence fits best
        keep = min(([k for k in keep if k != out] for out in keep), key=fits)
    if len(keep) < 2:
        return None
    sub = blocks[:, keep][:, :, keep]
    return keep, shared_weights(sub)[0], sub


def _shared_slopes(check, context, params, origin, group: list, norms: list[float], weights, d_norm: float,
                   free_terms: Callable[[], set]) -> tuple[list, list]:
    """Every term's central differences along d = Σ_k w_pk g_kp (per parameter p), shortening the
    step for the terms that still miss, by the rules `_slopes` follows for one term; a term whose
    predicted change is below the float rounding at the spec's ε gets no slopes (judged along ĝ_k),
    unless it would be below it along ĝ_k too (then it is measured at ε only, as there).
    A shorter step for terms that all read no output of forward runs none (`_output_free`; one
    that then misses is judged along its own gradient, with forwards)."""
    from alignguard.checks.gradients.perturb import Moved

    moved = Moved(params, origin, [e[2] for e in group], weights)
    try:  # `along` leaves θ + δ₊ held: θ again whichever way the steps end
        return _shared_steps(check, context, moved, group, norms, d_norm, free_terms)
    finally:
        moved.restore()


def _shared_steps(check, context, moved, group: list, norms: list[float], d_norm: float,
                  free_terms: Callable[[], set]) -> tuple[list, list]:
    """`_shared_slopes`' steps along d, the direction `moved` holds."""
    tolerance = context.spec.gradients.descent_tolerance
    epsilon = context.spec.gradients.descent_epsilon
    slopes: list[list[Slope]] = [[] for _ in group]
    stops = [""] * len(group)
    open_ = list(range(len(group)))
    for divisor in (1, *SHORTER):
        if not open_:
            break
        held = {sign: sign * epsilon / divisor / d_norm for sign in (1.0, -1.0)}
        free = free_terms() if divisor > 1 else set()  # evaluated at θ: `along` leaves θ + δ₊ held
        predicted, span = moved.along(held[1.0], held[-1.0])
        for k in list(open_):
            _, _, _, value, roundoff, _ = group[k]
            below = _rounding(epsilon / divisor, span, predicted[k], value, roundoff, tolerance)
            if below and divisor == 1 and _rounding(epsilon, 2 * epsilon, 2 * epsilon * norms[k], value,
                                                    roundoff, tolerance):
                stops[k] = f"ε = {epsilon:g} itself {below}"  # as along ĝ_k: measured, and no shorter step
            elif below:
                open_.remove(k)  # at the spec's ε: judged along ĝ_k, whose predicted change is larger
                if divisor > 1:
                    stops[k] = f"no shorter step: ε = {epsilon / divisor:g} {below}"
        if not open_:
            break
        keys = [(group[k][0], group[k][1]) for k in open_]
        stale = check._stale if divisor > 1 and set(keys) <= free else None
        changes = check._changes(context, moved, held, keys, stale)
        for k, change in zip(list(open_), changes):
            slopes[k].append(Slope(epsilon / divisor, change, predicted[k], span))
            miss = [abs(s.ratio - 1.0) for s in slopes[k]]
            if miss[-1] <= tolerance or stops[k]:
                open_.remove(k)
            elif len(miss) > 1 and not _closer(miss[-1], miss[-2]):
                stops[k] = NO_CLOSER
                open_.remove(k)
    return slopes, stops


def shared_weights(blocks) -> tuple[Any, list[float]]:
    """Weights w (parameters × terms) of the direction d_p = Σ_k w_pk g_kp that every term k sees, on
    every parameter p, as it sees its own normalised gradient: g_kp·d_p = |g_kp|²/|g_k|; and, per
    term, how far they miss that: Σ_p |g_kp·d_p − |g_kp|²/|g_k|| / |g_k| (0: exactly).

    `blocks` are the terms' per-parameter dot products G_p (`gram_blocks`). Per parameter this is
    the linear system G_p w_p = diag(G_p)/|g|, over the terms with a gradient there. Why: along d,
    term k's ratio (measured change over g_k·δ) weighs each parameter as the ratio along ĝ_k does,
    so a gradient wrong by a factor on any set of parameters (a reversal layer upstream of some
    modules, a reversed or scaled term) gives the same ratio along d as along ĝ_k, to within twice
    the misfit. Where the terms' gradients on a parameter are linearly dependent (a one-element
    bias), the system may have no exact solution: least squares, and the misfit says by how much.
    """
    import torch

    diag = blocks.diagonal(dim1=1, dim2=2)  # (P, K) |g_kp|²
    norms = diag.sum(dim=0).clamp(min=0).sqrt()
    target = diag / norms.clamp(min=1e-300)
    active = diag > 0
    pair = active[:, :, None] & active[:, None, :]
    gram = torch.where(pair, blocks, torch.zeros_like(blocks))
    system = gram + torch.diag_embed((~active).double())  # a term without gradient on p: weight 0 there
    weights = torch.linalg.lstsq(system, target.unsqueeze(-1)).solution.squeeze(-1)
    weights = torch.where(active & torch.isfinite(weights), weights, torch.zeros_like(weights))
    residual = (torch.einsum("pkl,pl->pk", gram, weights) - target).abs().sum(dim=0)
    misfit = torch.where(norms > 0, residual / norms.clamp(min=1e-300), torch.full_like(norms, math.inf))
    return weights, misfit.tolist()
