"""θ + step·g written into a model's parameters, and the step it really takes, for loss.descent.

The perturbed values are computed twice, identically: once to measure the step the parameters
will hold after rounding to their dtype (`Moved.along`: g·(δ₊ − δ₋) and |δ₊ − δ₋| in float64, so
the prediction is exact whatever that rounding does) and once to write them (`Moved.hold`), so no
whole-model temporary is ever held. Large parameters go chunk by chunk (no temporary larger than
`CHUNK`); the many small ones (a ResNet's BatchNorm weights and 1x1 convolutions) go in bundles of
at most `CHUNK` elements through one `torch._foreach_*` call per bundle, because one call per
parameter cost as much Python overhead as the arithmetic (half of loss.descent's bookkeeping on the
ResNet-50 layout).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from alignguard.gradients.measure import CHUNK


class Moved:
    """The parameters one gradient moves: `params`, their saved values `origin`, and `pieces` (the
    gradient per parameter, None where it is zero: that parameter is never written)."""

    def __init__(self, params: Sequence[torch.Tensor], origin: Sequence[torch.Tensor], pieces: Sequence[Any]):
        self.bundles: list[tuple[list, list, list]] = []  # (flat params, flat origins, flat gradients)
        self.large: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        size = CHUNK + 1
        for p, start, g in zip(params, origin, pieces):
            if g is None:
                continue
            if _bundled(p, start, g):
                if size + p.numel() > CHUNK:
                    self.bundles.append(([], [], []))
                    size = 0
                flats, starts, grads = self.bundles[-1]
                flats.append(p.detach().view(-1))
                starts.append(start.reshape(-1))
                grads.append(g.reshape(-1))
                size += p.numel()
            else:
                self.large.append((p, start, g))

    def along(self, plus: float, minus: float) -> tuple[float, float]:
        """(g·(δ₊ − δ₋), |δ₊ − δ₋|) in float64, δ± the perturbations the parameters will hold at
        θ + plus·g and θ + minus·g."""
        dot = sq = 0.0
        for _, starts, grads in self.bundles:
            a = torch.cat(torch._foreach_add(starts, grads, alpha=plus)).double()
            span = a - torch.cat(torch._foreach_add(starts, grads, alpha=minus)).double()
            dot += float(torch.cat(grads).double() @ span)
            sq += float(span @ span)
        for p, start, g in self.large:
            flat = g.reshape(-1)
            for (i, a), (_, b) in zip(_held(p, start, g, plus), _held(p, start, g, minus)):
                span = a.double() - b.double()
                dot += float(flat[i:i + span.numel()].double().to(span.device) @ span)
                sq += float(span @ span)
        return dot, sq ** 0.5

    def hold(self, step: float) -> None:
        """Write θ + step·g into the parameters in place (the values `along` measured)."""
        with torch.no_grad():
            for flats, starts, grads in self.bundles:
                torch._foreach_copy_(flats, torch._foreach_add(starts, grads, alpha=step))
            for p, start, g in self.large:
                _hold(p, start, g, step)

    def restore(self) -> None:
        """θ again in every parameter this gradient moves."""
        with torch.no_grad():
            for flats, starts, _ in self.bundles:
                torch._foreach_copy_(flats, starts)
            for p, start, _ in self.large:
                p.copy_(start)


def _bundled(p, start, g) -> bool:
    """Small float32 parameters, contiguous, on one device with their origin and gradient: one foreach call."""
    return (p.numel() <= CHUNK and p.dtype == start.dtype == g.dtype == torch.float32 and p.is_contiguous()
            and p.device == start.device == g.device)


def _held(p, start, g, step: float):
    """The values parameter `p` would hold at θ + step·g (g unnormalised: `step` carries 1/|g|), rounded
    to its dtype, flat, one chunk at a time: (offset, values). One fused add in at least float32 (a
    float64 detour cost half of loss.descent on the ResNet-50 layout); no temporary is larger than a chunk."""
    compute = torch.promote_types(start.dtype, torch.float32)
    start, g = start.reshape(-1), g.reshape(-1).to(start.device)
    for i in range(0, start.numel(), CHUNK):
        yield i, torch.add(start[i:i + CHUNK].to(compute), g[i:i + CHUNK].to(compute), alpha=step).to(p.dtype)


def _hold(p, start, g, step: float) -> None:
    """Write θ + step·g into parameter `p` in place, chunk by chunk (the values `_held` gives)."""
    flat = p.detach().view(-1) if p.is_contiguous() else None
    if flat is None:
        p.copy_(torch.cat([values for _, values in _held(p, start, g, step)]).view_as(p))
        return
    for i, values in _held(p, start, g, step):
        flat[i:i + values.numel()].copy_(values)
