"""checks/gradients/perturb.py: the values `Moved` writes are θ + step·d, and `along` measures exactly them."""

import pytest
import torch

from alignguard.checks.gradients.perturb import Moved
from alignguard.gradients.measure import CHUNK


def layout(dtype_large=torch.float32):
    """Parameters of every kind `Moved` meets: small ones (bundled) of odd sizes, one larger than a chunk,
    one non-contiguous, one float64; two terms, one with no gradient on some parameter."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(7,), (3, 5), (64, 33), (1,), (CHUNK + 1000,), (40, 30)]
    params = [torch.randn(s, generator=generator) for s in shapes]
    params.append(torch.randn(30, 40, generator=generator).t())  # non-contiguous
    params.append(torch.randn(CHUNK // 2 + 3, generator=generator, dtype=dtype_large))
    params = [torch.nn.Parameter(p) for p in params]
    origin = [p.detach().clone() for p in params]
    first = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
    second = [None if i in (1, 4) else torch.randn(p.shape, generator=generator, dtype=p.dtype)
              for i, p in enumerate(params)]
    weights = torch.rand(len(params), 2, generator=generator, dtype=torch.float64)
    weights[0] = torch.tensor([1.0, 0.0])  # d's piece is the first gradient itself
    weights[2, 0] = 0.0  # only the second term moves it
    return params, origin, [first, second], weights


def expected(origin, terms, weights, step, p_index):
    """θ + step·d for one parameter, as documented: small float32 ones d summed in float64, rounded to
    float32, then one add; the others one float32 add per term, in term order."""
    start = origin[p_index]
    mix = [(float(weights[p_index, k]), term[p_index]) for k, term in enumerate(terms)]
    mix = [(w, g) for w, g in mix if g is not None and w != 0.0]
    if start.numel() <= CHUNK and start.dtype == torch.float32 and start.is_contiguous():
        if len(mix) == 1 and mix[0][0] == 1.0:
            d = mix[0][1]
        else:
            d = torch.zeros(start.shape, dtype=torch.float64)
            for w, g in mix:
                d.add_(g.double(), alpha=w)
            d = d.float()
        return torch.add(start, d, alpha=step)
    flat = start.reshape(-1)
    values = flat
    for w, g in mix:  # one chunk at a time, as the parameter is written
        values = torch.cat([torch.add(values[i:i + CHUNK], g.reshape(-1)[i:i + CHUNK], alpha=step * w)
                            for i in range(0, flat.numel(), CHUNK)])
    return values.view(start.shape)


@pytest.mark.parametrize("dtype_large", [torch.float32, torch.float64])
def test_along_measures_exactly_the_values_hold_writes(dtype_large):
    params, origin, terms, weights = layout(dtype_large)
    moved = Moved(params, origin, terms, weights)
    step = 1e-3
    dots, span = moved.along(step, -step)
    plus = [p.detach().clone() for p in params]  # `along` leaves θ + δ₊ held
    moved.hold(-step)
    minus = [p.detach().clone() for p in params]
    moved.hold(step)
    assert all(torch.equal(p, q) for p, q in zip(params, plus))
    for index in range(len(params)):
        assert torch.equal(plus[index], expected(origin, terms, weights, step, index)), index
        assert torch.equal(minus[index], expected(origin, terms, weights, -step, index)), index
    spans = [a.double() - b.double() for a, b in zip(plus, minus)]
    for k, term in enumerate(terms):
        reference = sum(float((g.double() * s).sum()) for g, s in zip(term, spans) if g is not None)
        assert dots[k] == pytest.approx(reference, rel=1e-12)
    assert span == pytest.approx(sum(float(s.pow(2).sum()) for s in spans) ** 0.5, rel=1e-12)
    moved.restore()
    assert all(torch.equal(p, o) for p, o in zip(params, origin))
    moved.restore()  # nothing held: nothing written
    assert all(torch.equal(p, o) for p, o in zip(params, origin))


def test_a_parameter_no_term_moves_is_never_written():
    params, origin, terms, weights = layout()
    weights[3] = 0.0
    moved = Moved(params, origin, terms, weights)
    moved.along(1e-3, -1e-3)
    moved.hold(-1e-3)
    assert torch.equal(params[3], origin[3])
    moved.restore()


def test_restore_writes_theta_after_a_write_that_failed_midway():
    params, origin, terms, weights = layout()
    moved = Moved(params, origin, terms, weights)
    moved.large[0][2].append((1.0, "not a tensor"))  # the large parameter's second write fails
    with pytest.raises(AttributeError):
        moved.along(1e-3, -1e-3)
    assert not all(torch.equal(p, o) for p, o in zip(params, origin))  # the bundles were written
    moved.restore()
    assert all(torch.equal(p, o) for p, o in zip(params, origin))
