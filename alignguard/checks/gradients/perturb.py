"""θ + step·d written into a model's parameters, and the step it really takes, for loss.descent.

The direction d is given per parameter as a combination of the terms' gradients, d_p = Σ_k w_pk g_kp
(one term with weight 1: its own gradient; several: the direction loss.descent shares between
terms, see `shared_direction.shared_weights`), so no whole-model copy of d is ever held: large parameters
build it chunk by chunk from the gradients (no temporary larger than `CHUNK`), the many small ones
(a ResNet's BatchNorm weights and 1x1 convolutions) build their piece of d per call and go in
bundles of at most `CHUNK` elements through one `torch._foreach_*` call per bundle, because one call per
parameter cost as much Python overhead as the arithmetic.

The perturbed values are computed twice, identically: once to measure the step the parameters
will hold after rounding to their dtype (`Moved.along`: every term's g_k·(δ₊ − δ₋) and |δ₊ − δ₋|
in float64, so each prediction is exact whatever that rounding does) and once to write them
(`Moved.hold`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from alignguard.gradients.measure import CHUNK, chunk_buffer


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
        # float64 and float32 chunks made once and kept (`chunk_buffer`, at most a few chunks): a fresh
        # 2 MiB tensor per call is mapped and faulted in anew, which cost more than the arithmetic
        self.buffers: dict = {}
        self.holding: float | None = None  # the step the parameters hold (None: θ, as given)
        size = CHUNK + 1
        for index, (p, start) in enumerate(zip(params, origin)):
            pieces = [term[index] for term in terms]
            mix_all = [(1.0 if weights is None else float(weights[index, k]), g) for k, g in enumerate(pieces)]
            mix = [(w, g) for w, g in mix_all if g is not None and w != 0.0]
            if not mix:
                continue
            if _bundled(p, start, pieces):
                if size + p.numel() > CHUNK:
                    self.bundles.append(([], [], [], [[] for _ in terms]))
                    size = 0
                flats, starts, directions, grads = self.bundles[-1]
                flats.append(p.detach().view(-1))
                starts.append(start.reshape(-1))
                directions.append([(k, w) for k, (w, g) in enumerate(mix_all) if g is not None and w != 0.0])
                for k, g in enumerate(pieces):
                    grads[k].append(torch.zeros(p.numel(), device=p.device) if g is None else g.reshape(-1))
                size += p.numel()
            else:
                self.large.append((p, start, mix, pieces))

    def along(self, plus: float, minus: float) -> tuple[list[float], float]:
        """([g_k·(δ₊ − δ₋) for every term], |δ₊ − δ₋|) in float64, δ± the perturbations the parameters
        hold at θ + plus·d and θ + minus·d; the parameters are left holding θ + plus·d, the values
        just measured (so `hold(plus)` writes nothing), until `hold` or `restore`."""
        dots, sq = [0.0] * self.count, 0.0
        buffers = self.buffers
        with torch.no_grad():
            for flats, starts, mixes, grads in self.bundles:
                # values and gradients concatenated into float64 buffers made once
                directions = _directions(mixes, grads, buffers)
                n = sum(start.numel() for start in starts)
                span, other = (chunk_buffer(buffers, slot, n, torch.float64, starts[0].device) for slot in (0, 1))
                values = torch._foreach_add(starts, directions, alpha=plus)
                torch._foreach_copy_(flats, values)
                _cat64(values, span, buffers)
                span.sub_(_cat64(torch._foreach_add(starts, directions, alpha=minus), other, buffers))
                for k, pieces in enumerate(grads):
                    dots[k] += float(torch.dot(_cat64(pieces, other, buffers), span))
                sq += float(torch.dot(span, span))
            # float64 chunks converted into buffers made once, products by torch.dot (1-D `@` in float64
            # took twice as long); θ + plus·d is written into the parameter as it is measured
            for p, start, mix, pieces in self.large:
                flats = [None if g is None else g.reshape(-1) for g in pieces]
                into_minus = lambda i, n, start=start: chunk_buffer(buffers, 3, n, start.dtype, start.device)  # noqa: E731
                for (i, a), (_, b) in zip(_written(p, start, mix, plus),
                                          _held(p, start, mix, minus, into_minus)):
                    span, other = (chunk_buffer(buffers, slot, a.numel(), torch.float64, a.device) for slot in (0, 1))
                    torch.sub(span.copy_(a), other.copy_(b), out=span)
                    for k, flat in enumerate(flats):
                        if flat is not None:
                            dots[k] += float(torch.dot(other.copy_(flat[i:i + span.numel()]), span))
                    sq += float(torch.dot(span, span))
        self.holding = plus
        return dots, sq ** 0.5

    def hold(self, step: float) -> None:
        """Write θ + step·d into the parameters in place (the values `along` measured)."""
        if self.holding == step:
            return
        buffers = self.buffers
        with torch.no_grad():
            for flats, starts, mixes, grads in self.bundles:
                directions = _directions(mixes, grads, buffers)
                torch._foreach_copy_(flats, torch._foreach_add(starts, directions, alpha=step))
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


def _directions(mixes: list, grads: list, buffers: dict) -> list[torch.Tensor]:
    """A bundle's pieces of d, flat float32, built now (a bundle is at most `CHUNK` elements) in
    buffers made once. A piece that is one term's gradient with weight 1 is that gradient, no copy;
    the others are summed in float64 parameter by parameter, terms in order (the same kernels on the
    same lengths as one sum per parameter, so the same values), each term's gradients converted by
    one concatenation per bundle: one fresh float64 tensor per parameter and term cost more than d."""
    if all(_alone(mix) for mix in mixes):
        return [grads[mix[0][0]][index] for index, mix in enumerate(mixes)]
    sizes = [piece.numel() for piece in grads[0]]
    n, device = sum(sizes), grads[0][0].device
    sums = chunk_buffer(buffers, 4, n, torch.float64, device).zero_()
    summed = sums.split(sizes)
    converted = chunk_buffer(buffers, 5, n, torch.float64, device)
    for k, pieces in enumerate(grads):
        weights = [dict(mix).get(k) for mix in mixes]
        if all(w is None for w in weights):
            continue
        for w, piece, into in zip(weights, _cat64(pieces, converted, buffers).split(sizes), summed):
            if w is not None:
                into.add_(piece, alpha=w)
    directions = list(chunk_buffer(buffers, 6, n, torch.float32, device).copy_(sums).split(sizes))
    for index, mix in enumerate(mixes):
        if _alone(mix):
            directions[index] = grads[mix[0][0]][index]
    return directions


def _cat64(pieces: list, out: torch.Tensor, buffers: dict) -> torch.Tensor:
    """float32 `pieces` concatenated into float64 `out`: concatenated in float32 first (a buffer made once),
    then converted in one pass; `torch.cat` into a float64 output converted piece by piece, 10x slower."""
    flat = torch.cat(pieces, out=chunk_buffer(buffers, 7, out.numel(), pieces[0].dtype, out.device))
    return out.copy_(flat)


def _alone(mix: list) -> bool:
    """d's piece is the gradient of one term with weight 1."""
    return len(mix) == 1 and mix[0][1] == 1.0


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
    if flat is None:  # computed chunk by chunk, written whole at the end
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
