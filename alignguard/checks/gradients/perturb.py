"""θ + step·d written into a model's parameters, and the step it really takes, for loss.descent.

The direction d is given per parameter as a combination of the terms' gradients, d_p = Σ_k w_pk g_kp
(one term with weight 1: its own gradient; several: the direction loss.descent shares between
terms, see `shared_direction.shared_weights`), so no whole-model copy of d is ever held: large
parameters build it chunk by chunk from the gradients (no temporary larger than `CHUNK`), the many small ones
(a ResNet's BatchNorm weights and 1x1 convolutions) build their piece of d per call and go in
bundles of at most `CHUNK` elements through one `torch._foreach_*` call per bundle, because one call per
parameter cost as much Python overhead as the arithmetic.

`Moved.along` measures the step the parameters hold after rounding to their dtype (every term's
g_k·(δ₊ − δ₋) and |δ₊ − δ₋| in float64, so each prediction is exact whatever that rounding does),
and writes θ + δ₊ into the parameters as it computes it: the values measured are the values held,
and the first `hold` after it writes nothing. θ + δ₋ is computed again, identically, when `hold`
writes it: keeping it from `along` would be a whole-model copy. (Measuring while holding instead,
g_k·p₊ − g_k·p₋ from two passes, cancels: its float64 rounding, u·Σ|g_k θ| against the predicted
2ε|g_k|, is 3e-9 of the prediction on the ResNet-50 layout at ε = 1e-6, 0.08 in the worst case; and
|δ₊ − δ₋| needs both values at once.)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from alignguard.gradients.measure import CHUNK, chunk_buffer


_PARTLY = float("nan")  # `Moved.holding` while parameters are being written: equal to no step, not θ


class Moved:
    """The parameters a direction moves: `params`, their saved values `origin`, the terms' gradients
    `terms` (per term, one piece per parameter, None where it is zero) and `weights` ((parameters,
    terms) float64: d_p = Σ_k weights[p, k]·terms[k][p]; default: the single term's own gradient).
    A parameter where d is zero is never written."""

    def __init__(self, params: Sequence[torch.Tensor], origin: Sequence[torch.Tensor],
                 terms: Sequence[Sequence[Any]], weights: torch.Tensor | None = None):
        self.count = len(terms)
        self.bundles: list[tuple[list, list, list, list]] = []  # (flat params, origins, d's mixes, [per term pieces])
        self.large: list[tuple[torch.Tensor, torch.Tensor, list, list]] = []  # (p, origin, [(w, g)], per term g)
        self.holding: float | None = None  # the step the parameters hold (None: θ, as given)
        size = CHUNK + 1
        for index, (p, start) in enumerate(zip(params, origin)):
            pieces = [term[index] for term in terms]
            mix = [(1.0 if weights is None else float(weights[index, k]), g) for k, g in enumerate(pieces)]
            mix = [(w, g) for w, g in mix if g is not None and w != 0.0]
            if not mix:
                continue
            if _bundled(p, start, pieces):
                if size + p.numel() > CHUNK:
                    self.bundles.append(([], [], [], [[] for _ in terms]))
                    size = 0
                flats, starts, directions, grads = self.bundles[-1]
                flats.append(p.detach().view(-1))
                starts.append(start.reshape(-1))
                directions.append(mix)  # d's piece is built per call (`_directions`): no model-sized copy held
                for k, g in enumerate(pieces):
                    grads[k].append(torch.zeros(p.numel(), device=p.device) if g is None else g.reshape(-1))
                size += p.numel()
            else:
                self.large.append((p, start, mix, pieces))

    def along(self, plus: float, minus: float) -> tuple[list[float], float]:
        """([g_k·(δ₊ − δ₋) for every term], |δ₊ − δ₋|) in float64, δ± the perturbations the parameters
        hold at θ + plus·d and θ + minus·d. The parameters are left holding θ + plus·d, the values just
        measured, until `hold` or `restore`: a caller restores θ however it ends."""
        dots, sq = [0.0] * self.count, 0.0
        self.holding = _PARTLY
        with torch.no_grad():
            for flats, starts, mixes, grads in self.bundles:
                directions = _directions(mixes, starts)
                values = torch._foreach_add(starts, directions, alpha=plus)
                torch._foreach_copy_(flats, values)
                a = torch.cat(values).double()
                span = a - torch.cat(torch._foreach_add(starts, directions, alpha=minus)).double()
                for k, pieces in enumerate(grads):
                    dots[k] += float(torch.cat(pieces).double() @ span)
                sq += float(span @ span)
            # float64 chunks converted into buffers made once (a fresh 2 MiB tensor per conversion cost more
            # than the arithmetic), products by torch.dot (1-D `@` in float64 took twice as long); θ + plus·d
            # is written into the parameter chunk by chunk as it is measured
            buffers: dict = {}
            for p, start, mix, pieces in self.large:
                flats = [None if g is None else g.reshape(-1) for g in pieces]
                into_minus = lambda i, n, start=start: chunk_buffer(buffers, 3, n, start.dtype, start.device)  # noqa: E731
                for (i, a), (_, b) in zip(_written(p, start, mix, plus), _held(p, start, mix, minus, into_minus)):
                    span, other = (chunk_buffer(buffers, slot, a.numel(), torch.float64, a.device) for slot in (0, 1))
                    torch.sub(span.copy_(a), other.copy_(b), out=span)
                    for k, flat in enumerate(flats):
                        if flat is not None:
                            dots[k] += float(torch.dot(other.copy_(flat[i:i + span.numel()]), span))
                    sq += float(torch.dot(span, span))
        self.holding = plus
        return dots, sq ** 0.5

    def hold(self, step: float) -> None:
        """Write θ + step·d into the parameters in place (the values `along` measured); nothing when
        they hold it already."""
        if self.holding == step:
            return
        self.holding = _PARTLY
        with torch.no_grad():
            for flats, starts, mixes, _ in self.bundles:
                torch._foreach_copy_(flats, torch._foreach_add(starts, _directions(mixes, starts), alpha=step))
            for p, start, mix, _ in self.large:
                for _ in _written(p, start, mix, step):
                    pass
        self.holding = step

    def restore(self) -> None:
        """θ again in every parameter the direction moves (nothing to write when they hold θ)."""
        if self.holding is None:
            return
        with torch.no_grad():
            for flats, starts, _, _ in self.bundles:
                torch._foreach_copy_(flats, starts)
            for p, start, _, _ in self.large:
                p.copy_(start)
        self.holding = None


def _bundled(p, start, pieces) -> bool:
    """Small float32 parameters, contiguous, on one device with their origin and gradients: one foreach call."""
    return (p.numel() <= CHUNK and p.dtype == start.dtype == torch.float32 and p.is_contiguous()
            and p.device == start.device
            and all(g is None or (g.dtype == torch.float32 and g.device == p.device) for g in pieces))


def _directions(mixes: list, starts: list) -> list[torch.Tensor]:
    """A bundle's pieces of d, flat float32, built now (a bundle is at most `CHUNK` elements)."""
    return [_combined(mix, start.numel()) for mix, start in zip(mixes, starts)]


def _combined(mix: list, numel: int) -> torch.Tensor:
    """A small parameter's piece of d, flat float32 (the gradient itself, no copy, for weight 1 alone)."""
    if len(mix) == 1 and mix[0][0] == 1.0:
        return mix[0][1].reshape(-1)
    total = torch.zeros(numel, dtype=torch.float64, device=mix[0][1].device)
    for w, g in mix:
        total.add_(g.reshape(-1).double(), alpha=w)
    return total.float()


def _held(p, start, mix, step: float, into=None):
    """The values parameter `p` would hold at θ + step·d (d = Σ w·g, unnormalised: `step` carries
    1/|d|), rounded to its dtype, flat, one chunk at a time: (offset, values). Fused adds in at least
    float32 (a float64 detour cost half of loss.descent on the ResNet-50 layout); no temporary is
    larger than a chunk. `into(offset, size)` gives the tensor of `compute`'s dtype each chunk is
    written to (a buffer, or the parameter itself): the same kernels, so the same values, without a
    fresh chunk per add (which cost as much as the adds)."""
    compute = torch.promote_types(start.dtype, torch.float32)
    start = start.reshape(-1)
    flats = [(w, g.reshape(-1).to(start.device)) for w, g in mix]
    for i in range(0, start.numel(), CHUNK):
        n = min(CHUNK, start.numel() - i)
        out = into(i, n) if into is not None and compute == start.dtype else None
        values = start[i:i + n]
        for w, g in flats:
            if out is None:
                values = torch.add(values.to(compute), g[i:i + n].to(compute), alpha=step * w)
            else:
                values = torch.add(values, g[i:i + n].to(compute), alpha=step * w, out=out)
        yield i, values.to(p.dtype)


def _written(p, start, mix, step: float):
    """Write θ + step·d into parameter `p` in place, chunk by chunk (the values `_held` gives), and
    yield each chunk as written: (offset, values)."""
    flat = p.detach().view(-1) if p.is_contiguous() else None
    if flat is None:  # computed chunk by chunk, written whole once the last is yielded
        chunks = []
        for i, values in _held(p, start, mix, step):
            chunks.append(values)
            yield i, values
        p.copy_(torch.cat(chunks).view_as(p))
        return
    for i, values in _held(p, start, mix, step, into=lambda i, n: flat[i:i + n]):
        if values.data_ptr() != flat[i:].data_ptr():  # computed elsewhere (another dtype): copied in
            flat[i:i + values.numel()].copy_(values)
        yield i, values
