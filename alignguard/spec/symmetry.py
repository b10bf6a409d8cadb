"""Continuous symmetries of a design equation: the ways to move its symbols that leave its value unchanged.

A symmetry is a vector field V = Σ_s ξ_s ∂/∂s with V f = 0, where each ξ_s is a linear combination
of the terms {1, s, every other symbol}: a shift (ξ_U = 1), a scaling (ξ_M = M), a compensated
move (ξ_U = 1, ξ_B = −M: (U_I+δ, B−M·δ)), or a shift that one symbol's scaling compensates
(ξ_a = 1, ξ_b = −b: exp(a)·b's (a+δ, e^(−δ)·b)). For `logit = (M*U_I + B)/T` that gives (M, B, T) -> k·(M, B, T),
(U_I, M) -> (k·U_I, M/k), (U_I+δ, B−M·δ) and (U_I, B, T) -> k·(U_I, B, T).

Found numerically, with no computer algebra: ∂f/∂s at random points (autograd in float64) makes
V f = 0 a linear system in the coefficients of ξ, whose null space is the set of symmetries. Each is
reported by its support (the symbols it moves), smallest supports first: a symmetry of a support is
new only if the supports inside it do not already explain it. `flow` applies the finite transformation
(the exponential of the linear field), which is what the identifiability check does to the real model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from alignguard.spec.formula import BinOp, Call, Const, Expr, Neg, Symbol

POINTS = 64  # random points the equation V f = 0 is imposed at (more than the unknowns for <= 7 symbols)
ONE = "1"


@dataclass(frozen=True)
class Symmetry:
    """One generator: ξ[s][term] is the coefficient of `term` (a symbol name or "1") in the move of s."""

    xi: dict[str, dict[str, float]]

    @property
    def support(self) -> tuple[str, ...]:
        return tuple(self.xi)

    @property
    def coefficient_symbols(self) -> dict[str, set[str]]:
        """Per moved symbol, the other symbols its move is proportional to (B−M·δ: B -> {M})."""
        return {s: {t for t in terms if t not in (ONE, s)} for s, terms in self.xi.items()}

    @property
    def is_scaling(self) -> bool:
        return all(set(terms) == {s} for s, terms in self.xi.items())

    @property
    def is_shift(self) -> bool:
        return all(s not in terms for s, terms in self.xi.items())

    def describe(self, gauge: str) -> str:
        """E.g. `(M, B, T) -> k(c)·(M, B, T)` or `(U_I+δ, B−M·δ)`; `gauge` is the parameter's arguments."""
        if self.is_scaling:
            exponents = {s: terms[s] for s, terms in self.xi.items()}
            if len(set(exponents.values())) == 1:
                names = ", ".join(exponents)
                power = _power(next(iter(exponents.values())))
                return f"({names}) -> k{gauge}{power}·({names})"
            return "(" + ", ".join(f"k{gauge}{_power(e)}·{s}" for s, e in exponents.items()) + ")"
        moves = []
        for s, terms in self.xi.items():
            if set(terms) == {s}:  # a pure scaling of this symbol along a mixed move: e^(cδ)·s
                moves.append(f"e^({_combination(terms, f'δ{gauge}', lead=True).replace(s + '·', '')})·{s}")
            elif s not in terms:
                moves.append(f"{s}{_combination(terms, f'δ{gauge}')}")
            else:
                moves.append(f"{s} + δ{gauge}·({_combination(terms, '', lead=True)})")
        return "(" + ", ".join(moves) + ")"

    def flow(self, values: dict, parameter):
        """The symbols after moving along the field by `parameter` (per example): exp(t·A) on (s, 1)."""
        import torch

        names = list(values)
        order = {name: i for i, name in enumerate(names)}
        size = len(names) + 1
        generator = torch.zeros(size, size, dtype=torch.float64)
        for s, terms in self.xi.items():
            for term, coefficient in terms.items():
                generator[order[s], size - 1 if term == ONE else order[term]] = coefficient
        t = torch.as_tensor(parameter, dtype=torch.float64).reshape(-1)
        stacked = torch.stack([torch.as_tensor(values[n]).double().reshape(-1) for n in names]
                              + [torch.ones_like(torch.as_tensor(values[names[0]]).double().reshape(-1))])
        transform = torch.matrix_exp(t[:, None, None] * generator)  # (rows or 1, size, size)
        moved = torch.einsum("rij,jr->ir", transform.expand(stacked.shape[1], size, size), stacked)
        return {n: moved[order[n]].reshape(torch.as_tensor(values[n]).shape).to(torch.as_tensor(values[n]).dtype)
                for n in self.xi}


def _power(exponent: float) -> str:
    if exponent == 1:
        return ""
    text = str(Fraction(exponent).limit_denominator(12)) if exponent == round(exponent, 6) else f"{exponent:g}"
    return f"^{text}" if "/" not in text else f"^({text})"


def _combination(terms: dict[str, float], parameter: str, lead: bool = False) -> str:
    """Σ c·term·parameter as text: `+δ`, `−M·δ`, `+2·B·δ`."""
    text = ""
    for term, coefficient in terms.items():
        sign = "−" if coefficient < 0 else "+"
        magnitude = abs(coefficient)
        factor = "" if magnitude == 1 else f"{Fraction(magnitude).limit_denominator(12)}·"
        body = [factor.rstrip("·")] if factor else []
        if term != ONE:
            body.append(term)
        if parameter:
            body.append(parameter)
        text += f"{sign}{'·'.join(body) or '1'}"
    return text.lstrip("+") if lead else text


def to_torch(expr: Expr, values: dict):
    """Evaluate a formula's expression tree on tensors (float64 points)."""
    import torch
    import torch.nn.functional as F

    if isinstance(expr, Symbol):
        return values[expr.name]
    if isinstance(expr, Const):
        return torch.tensor(expr.value, dtype=torch.float64)
    if isinstance(expr, Neg):
        return -to_torch(expr.operand, values)
    if isinstance(expr, BinOp):
        a, b = to_torch(expr.left, values), to_torch(expr.right, values)
        return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "pow": a ** b}[expr.op]
    assert isinstance(expr, Call)
    args = [to_torch(a, values) for a in expr.args]
    functions = {"sigmoid": torch.sigmoid, "softplus": F.softplus, "exp": torch.exp, "log": torch.log,
                 "tanh": torch.tanh, "relu": torch.relu, "abs": torch.abs, "sqrt": torch.sqrt,
                 "logsigmoid": F.logsigmoid, "square": torch.square,
                 "logsumexp": lambda *terms: torch.logsumexp(torch.stack(torch.broadcast_tensors(*terms)), dim=0)}
    return functions[expr.func](*args)


def partials(expr: Expr, names: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(points (P, n), ∂f/∂s at them (P, n)) at random points in [0.5, 2]^n, where log and sqrt are defined."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    points = 0.5 + 1.5 * torch.rand(POINTS, len(names), generator=generator, dtype=torch.float64)
    leaves = {name: points[:, i].clone().requires_grad_(True) for i, name in enumerate(names)}
    value = to_torch(expr, leaves)
    grads = torch.autograd.grad(value.sum(), [leaves[n] for n in names], allow_unused=True)
    columns = [torch.zeros(POINTS, dtype=torch.float64) if g is None else g for g in grads]
    return points.numpy(), torch.stack(columns, dim=1).numpy()


def find_symmetries(expr: Expr) -> list[Symmetry]:
    """Every generator of the equation's scalings and (compensated) shifts, smallest support first.

    Three families, each a linear system: scalings (ξ_s = a_s·s: k^a_s·s), shifts (ξ_s a combination
    of 1 and the *other* symbols: U_I+δ, B−M·δ), and affine moves that shift some symbols while scaling
    others (ξ_s a combination of 1 and s: exp(a)·b's (a+δ, e^(−δ)·b), a log-scale shift). A family
    reports only directions the earlier ones have not found.
    """
    names = appearance_order(expr)
    if not names:
        return []
    points, grad = partials(expr, names)
    value = {name: points[:, i] for i, name in enumerate(names)} | {ONE: np.ones(len(points))}
    scale = np.abs(grad).max() or 1.0
    found: list[Symmetry] = []
    families = (lambda s: [s], lambda s: [ONE, *(r for r in names if r != s)], lambda s: [ONE, s])
    for terms_of in families:
        explained: dict[tuple[str, ...], tuple[list, np.ndarray]] = {}
        for size in range(1, len(names) + 1):
            for support in itertools.combinations(names, size):
                keys = [(s, t) for s in support for t in terms_of(s)]
                matrix = np.stack([value[t] * grad[:, names.index(s)] / scale for s, t in keys], axis=1)
                null = _null_space(matrix)
                explained[support] = (keys, null)
                if len(null) == 0:
                    continue
                inner = [_embed(*explained[sub], keys) for sub in itertools.combinations(support, size - 1)
                         if size > 1 and len(explained[sub][1])]
                # what an earlier family already found on this support or inside it (a scaling, a plain shift)
                inner += [_as_row(g, keys) for g in found if set(g.support) <= set(support)
                          and all((s, t) in keys for s, terms in g.xi.items() for t in terms)]
                inherited = np.concatenate(inner) if inner else np.zeros((0, len(keys)))
                kept = [g for g in found if set(g.support) == set(support)]
                for vector in _new_directions(null, inherited):
                    symmetry = _symmetry(vector, keys, names)
                    if not any(_multiple_of(symmetry, other) for other in kept):
                        kept.append(symmetry)
                        found.append(symmetry)
    return found


def appearance_order(expr: Expr) -> list[str]:
    """The expression's symbols in the order they are written."""
    if isinstance(expr, Symbol):
        return [expr.name]
    children = {BinOp: lambda e: [e.left, e.right], Neg: lambda e: [e.operand], Call: lambda e: list(e.args)}
    order: list[str] = []
    for child in children.get(type(expr), lambda e: [])(expr):
        order += [n for n in appearance_order(child) if n not in order]
    return order


def _null_space(matrix: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """Orthonormal rows spanning {v : matrix v = 0}."""
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    rank = int((singular > tolerance * max(1.0, singular.max(initial=0.0))).sum())
    return vt[rank:]


def _embed(sub_keys: list, rows: np.ndarray, keys: list) -> np.ndarray:
    """A sub-support's null vectors written in the larger support's columns."""
    out = np.zeros((len(rows), len(keys)))
    for i, key in enumerate(sub_keys):
        out[:, keys.index(key)] = rows[:, i]
    return out


def _as_row(symmetry: Symmetry, keys: list) -> np.ndarray:
    """A found generator written in a support's columns (every term of it must be one of `keys`)."""
    row = np.zeros((1, len(keys)))
    for s, terms in symmetry.xi.items():
        for term, coefficient in terms.items():
            row[0, keys.index((s, term))] = coefficient
    return row


def _multiple_of(candidate: Symmetry, base: Symmetry) -> bool:
    """candidate = r·base for one symbol r, with base a pure shift ((U+R·δ, R_E+R·δ) is (U+δ, R_E+δ) again,
    with the gauge parameter multiplied by R_E): the same symmetry, not a new one."""
    if not all(set(terms) == {ONE} for terms in base.xi.values()):
        return False
    factors = {term for terms in candidate.xi.values() for term in terms}
    if len(factors) != 1:
        return False
    factor = next(iter(factors))
    return all(candidate.xi[s] == {factor: base.xi[s][ONE]} for s in base.xi)


def _new_directions(null: np.ndarray, inherited: np.ndarray) -> list[np.ndarray]:
    """Directions of `null` outside the span of `inherited`, each made sparse and readable."""
    if len(inherited):
        _, singular, vt = np.linalg.svd(inherited, full_matrices=False)
        span = vt[singular > 1e-9 * singular.max()]
        residual = null - (null @ span.T) @ span
    else:
        residual = null
    _, singular, vt = np.linalg.svd(residual, full_matrices=False) if len(residual) else (None, np.zeros(0), None)
    directions = vt[singular > 1e-6] if len(singular) else []
    return [_readable(v) for v in _reduced(np.asarray(directions))] if len(directions) else []


def _reduced(rows: np.ndarray) -> np.ndarray:
    """Reduced row echelon form of a few rows (sparse generators, one pivot each)."""
    rows = rows.copy()
    pivot_row = 0
    for column in range(rows.shape[1]):
        if pivot_row == len(rows):
            break
        best = pivot_row + int(np.argmax(np.abs(rows[pivot_row:, column])))
        if abs(rows[best, column]) < 1e-8:
            continue
        rows[[pivot_row, best]] = rows[[best, pivot_row]]
        rows[pivot_row] /= rows[pivot_row, column]
        for other in range(len(rows)):
            if other != pivot_row:
                rows[other] -= rows[other, column] * rows[pivot_row]
        pivot_row += 1
    return rows


def _readable(vector: np.ndarray) -> np.ndarray:
    """Scaled so the largest coefficient is ±1 (positive first), small rationals where they fit."""
    vector = vector / vector[np.argmax(np.abs(vector))]
    rounded = np.array([float(Fraction(float(v)).limit_denominator(12)) for v in vector])
    vector = rounded if np.abs(rounded - vector).max() < 1e-6 else vector
    vector[np.abs(vector) < 1e-9] = 0.0
    first = vector[np.flatnonzero(vector)[0]]
    return vector if first > 0 else -vector


def _symmetry(vector: np.ndarray, keys: list[tuple[str, str]], order: list[str]) -> Symmetry:
    """The generator, its symbols listed shifted-by-a-constant first (U_I+δ before B−M·δ), then in `order`;
    the sign chosen so that the first listed move is positive."""
    xi: dict[str, dict[str, float]] = {}
    for (s, term), coefficient in zip(keys, vector):
        if coefficient != 0:
            xi.setdefault(s, {})[term] = float(coefficient)
    listed = sorted(xi, key=lambda s: (ONE not in xi[s], order.index(s)))
    first = xi[listed[0]]
    sign = -1.0 if next(iter(first.values())) < 0 else 1.0
    return Symmetry({s: {t: sign * c for t, c in xi[s].items()} for s in listed})
