"""Cell contexts to probe with: observed ones, typical draws, and draws far outside the data.

Positivity of M(c) and T(c) must hold for cell lines nobody has seen, so the probe goes well
beyond the example batch: up to `scale` standard deviations out, and at the corners of that box.
"""

from __future__ import annotations

import torch


def draw_contexts(observed: torch.Tensor, n: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """n contexts shaped like the rows of `observed` (a batch of contexts).

    A quarter each: observed rows, draws from the per-feature Gaussian, draws at a random
    distance up to `scale` standard deviations, and corners at ±`scale` standard deviations.
    Integer contexts (cell ids) cannot be extrapolated: observed rows are resampled.
    """
    rows = torch.randint(len(observed), (n,), generator=generator)
    if not observed.is_floating_point():
        return observed[rows]
    flat = observed.reshape(len(observed), -1).double()
    mean = flat.mean(0)
    std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.zeros_like(mean)
    std = torch.where(std > 0, std, mean.abs().clamp(min=1.0))  # a constant feature still varies
    normal = torch.randn(n, flat.shape[1], generator=generator, dtype=torch.float64)
    kind = torch.arange(n) % 4
    radius = torch.rand(n, 1, generator=generator, dtype=torch.float64) * scale
    corners = torch.where(normal >= 0, 1.0, -1.0) * scale
    draws = torch.where((kind == 0)[:, None], flat[rows], mean + std * normal)
    draws = torch.where((kind == 2)[:, None], mean + std * normal / normal.norm(dim=1, keepdim=True).clamp(min=1e-12)
                        * radius * normal.shape[1] ** 0.5, draws)
    draws = torch.where((kind == 3)[:, None], mean + std * corners, draws)
    return draws.to(observed.dtype).reshape(n, *observed.shape[1:])


def describe_context(row: torch.Tensor, observed: torch.Tensor) -> str:
    """A context in words: how many standard deviations from the observed mean it lies."""
    if not row.is_floating_point():
        return f"context {row.tolist()}"
    flat = observed.reshape(len(observed), -1).double()
    std = flat.std(0, unbiased=False).clamp(min=1e-12) if len(flat) > 1 else torch.ones(flat.shape[1])
    z = ((row.reshape(-1).double() - flat.mean(0)) / std).abs().max()
    values = ", ".join(f"{v:.3g}" for v in row.reshape(-1)[:6].tolist())
    more = ", ..." if row.numel() > 6 else ""
    return f"context [{values}{more}] ({float(z):.3g} std devs out)"
