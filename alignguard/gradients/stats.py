"""How loss terms share and fight over the total gradient g = Σ g_i.

* share_i = g_i·g / |g|²: the part of the step along g that term i pays for. Shares sum to 1; a
  negative share means the term pushes against the total.
* |g_i| / |g|: how large the term's gradient is next to the net one (the seed's check
  ‖∇L_new‖ / ‖∇L_total‖); values ≫ 1 mean other terms cancel it.
* cos(g_i, g_j): pairwise conflict (the seed's ∇L_orth ≈ −α ∇L_domain gives cos ≈ −1).
* net/sum = |Σ g_i| / Σ |g_i|: 1 when all terms agree, → 0 when they cancel.

Computed in float64 so that a near-perfect cancellation is not lost to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class GradientStats:
    names: list[str]
    norms: dict[str, float]  # |g_i|
    total_norm: float  # |g|
    shares: dict[str, float | None]  # None when |g| = 0
    norm_ratios: dict[str, float | None]  # |g_i| / |g|; None when |g| = 0
    cosines: dict[tuple[str, str], float | None]  # None when either gradient is zero
    net_ratio: float | None  # |g| / Σ|g_i|; None when every gradient is zero

    def cosine(self, a: str, b: str) -> float | None:
        return self.cosines.get((a, b), self.cosines.get((b, a)))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for machine-readable reports."""
        return {
            "terms": {
                n: {"norm": self.norms[n], "share": self.shares[n], "norm_ratio": self.norm_ratios[n]}
                for n in self.names
            },
            "total_norm": self.total_norm,
            "cosines": {f"{a}|{b}": c for (a, b), c in self.cosines.items()},
            "net_ratio": self.net_ratio,
        }

    def table(self) -> str:
        """A plain-text table of norms, shares and cosines (one line per term)."""
        width = max([len(n) for n in self.names] + [4])
        head = f"{'term':<{width}}  {'|g_i|':>9}  {'|g_i|/|g|':>9}  {'share':>7}"
        head += "".join(f"  {'cos ' + n[:6]:>10}" for n in self.names)
        lines = [head]
        for a in self.names:
            line = f"{a:<{width}}  {self.norms[a]:>9.3g}  {_fmt(self.norm_ratios[a], 9)}  {_fmt(self.shares[a], 7)}"
            line += "".join(f"  {_fmt(1.0 if a == b and self.norms[a] else self.cosine(a, b), 10, '.3f')}"
                            for b in self.names)
            lines.append(line)
        lines.append(f"|g| = {self.total_norm:.3g}; net/sum |Σg_i|/Σ|g_i| = {_fmt(self.net_ratio, 0).strip()}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: every term's share and norm ratio."""
        parts = [f"{n} share {_fmt(self.shares[n], 0).strip()} (|g_i|/|g| {_fmt(self.norm_ratios[n], 0).strip()})"
                 for n in self.names]
        return "; ".join(parts) + f"; net/sum {_fmt(self.net_ratio, 0).strip()}"


def _fmt(value: float | None, width: int, spec: str = ".3g") -> str:
    return f"{'—':>{width}}" if value is None else f"{value:>{width}{spec}}"


def gradient_stats(names: Sequence[str], grads: torch.Tensor) -> GradientStats:
    """Statistics of the rows of `grads` (K, P), one per term name, from one K×K Gram matrix.

    Works on any device; only the K×K and K-sized results are moved to the CPU.
    """
    g = grads.double()
    gram = (g @ g.T).cpu() if len(names) else torch.zeros(0, 0, dtype=torch.float64)
    return gradient_stats_from_gram(names, gram)


def gradient_stats_from_gram(names: Sequence[str], gram: torch.Tensor) -> GradientStats:
    """The same statistics from the (K, K) float64 Gram matrix gram[i, j] = g_i·g_j alone."""
    k = len(names)
    norms = gram.diagonal().clamp(min=0).sqrt()
    along = gram.sum(dim=1)  # g_i·g with g = Σ g_j
    total_sq = float(along.sum()) if k else 0.0
    total_sq = max(total_sq, 0.0)
    total_norm = total_sq ** 0.5
    norm_sum = float(norms.sum())
    cosines: dict[tuple[str, str], float | None] = {}
    for i, j in combinations(range(k), 2):
        denominator = float(norms[i] * norms[j])
        cosines[(names[i], names[j])] = float(gram[i, j]) / denominator if denominator > 0 else None
    return GradientStats(
        names=list(names),
        norms={n: float(norms[i]) for i, n in enumerate(names)},
        total_norm=total_norm,
        shares={n: float(along[i]) / total_sq if total_sq > 0 else None for i, n in enumerate(names)},
        norm_ratios={n: float(norms[i]) / total_norm if total_norm > 0 else None for i, n in enumerate(names)},
        cosines=cosines,
        net_ratio=total_norm / norm_sum if norm_sum > 0 else None,
    )
