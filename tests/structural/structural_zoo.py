"""Small purpose-built models for the structural checks: a miniature CMDN and its broken variants.

Shapes: x (n, 8) "DNA features", c (n, 3) "cell context". The design under test is
z_I = mu + sigma * eps inside `bottleneck`, U_I = energy(z_I), (M, B, T) = modulator(c),
logit = (M * U_I + B) / T. Each variant changes one thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BATCH = 8


def example_batch(batch_size: int = BATCH, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 8, generator=g), "c": torch.randn(batch_size, 3, generator=g),
            "y": (torch.rand(batch_size, generator=g) < 0.3).float()}


class Encoder(nn.Module):
    def __init__(self, in_dim: int = 8):
        super().__init__()
        self.lin = nn.Linear(in_dim, 16)

    def forward(self, x):
        return torch.relu(self.lin(x))


class Bottleneck(nn.Module):
    """The design: reparameterised Gaussian noise in train mode, the mean in eval mode."""

    def __init__(self):
        super().__init__()
        self.mu_head = nn.Linear(16, 4)
        self.logvar_head = nn.Linear(16, 4)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        std = torch.exp(0.5 * logvar)
        return self.sample(mu, std), mu, logvar

    def sample(self, mu, std):
        if self.training:
            return mu + std * torch.randn_like(std)
        return mu


class Energy(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(4, 1)

    def forward(self, z):
        return self.out(z).squeeze(-1)


class Modulator(nn.Module):
    def __init__(self):
        super().__init__()
        self.m_head, self.b_head, self.t_head = nn.Linear(3, 1), nn.Linear(3, 1), nn.Linear(3, 1)

    def forward(self, c):
        M = F.softplus(self.m_head(c)).squeeze(-1) + 1e-3
        B = self.b_head(c).squeeze(-1)
        T = F.softplus(self.t_head(c)).squeeze(-1) + 0.05
        return M, B, T


class MiniCMDN(nn.Module):
    bottleneck_class = Bottleneck

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.bottleneck = self.bottleneck_class()
        self.energy = Energy()
        self.modulator = Modulator()

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        logit = self.head(M, U_I, B, T)
        return {"logit": logit, "z_I": z_I, "mu": mu, "U_I": U_I, "M": M, "B": B, "T": T}

    def head(self, M, U_I, B, T):
        return (M * U_I + B) / T


# ---- bottleneck variants ---------------------------------------------------------------------
class FixedShapeRandn(Bottleneck):
    def sample(self, mu, std):  # a concrete shape: fx runs this once and bakes the draw
        return mu + std * torch.randn(BATCH, 4) if self.training else mu


class ShapeOfRandn(Bottleneck):
    def sample(self, mu, std):
        return mu + std * torch.randn(std.shape) if self.training else mu


class InplaceNormal(Bottleneck):
    def sample(self, mu, std):
        if not self.training:
            return mu
        eps = torch.empty_like(std).normal_()
        z = mu.clone()
        z.add_(std * eps)
        return z


class UnusedNoise(Bottleneck):
    def sample(self, mu, std):
        eps = torch.randn_like(std)  # drawn, then forgotten  # noqa: F841
        return mu


class EvalOnlyNoise(Bottleneck):
    def sample(self, mu, std):
        if not self.training:  # backwards: noisy in eval, deterministic in training
            return mu + std * torch.randn_like(std)
        return mu


class AlwaysNoisy(Bottleneck):
    def sample(self, mu, std):
        return mu + std * torch.randn_like(std)


class ConstantScale(Bottleneck):
    def sample(self, mu, std):
        return mu + 0.1 * torch.randn_like(mu) if self.training else mu


class FixedTensorNoise(Bottleneck):
    def __init__(self):
        super().__init__()
        self.eps = torch.randn(4)  # drawn once at build time: the same "noise" on every call

    def sample(self, mu, std):
        return mu + std * self.eps if self.training else mu


class DistributionNoise(Bottleneck):
    def sample(self, mu, std):
        if self.training:
            return torch.distributions.Normal(mu, std).rsample()
        return mu


class DimBranch(Bottleneck):
    def forward(self, h):
        if h.dim() > 2:  # data-dependent Python control flow: fx cannot trace this
            h = h.flatten(1)
        return super().forward(h)


class DropoutOnly(Bottleneck):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)

    def sample(self, mu, std):
        return self.drop(mu)


class BottleneckWithoutNoise(Bottleneck):
    def forward(self, h):
        mu = self.mu_head(h)
        return mu, mu, self.logvar_head(h)


def with_bottleneck(cls):
    return type(f"MiniCMDN_{cls.__name__}", (MiniCMDN,), {"bottleneck_class": cls})


class NoiseOutside(MiniCMDN):
    def forward(self, x, c):
        _, mu, logvar = self.bottleneck(self.encoder(x))
        z_I = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        return {"logit": self.head(M, U_I, B, T), "z_I": z_I, "mu": mu, "U_I": U_I, "M": M, "B": B, "T": T}


# ---- head variants -----------------------------------------------------------------------------
class Reordered(MiniCMDN):
    def head(self, M, U_I, B, T):
        return (B + U_I * M) / T


class Functional(MiniCMDN):
    def head(self, M, U_I, B, T):
        return torch.div(torch.add(torch.mul(M, U_I), B), T)


class ThroughViews(MiniCMDN):
    def head(self, M, U_I, B, T):
        scaled = M.view(-1, 1) * U_I.unsqueeze(1)
        return (scaled.squeeze(1) + B.reshape(-1)).div(T.view(-1))


class MethodChain(MiniCMDN):
    def head(self, M, U_I, B, T):
        return M.mul(U_I).add(B).mul(T.reciprocal())


class Subtractive(MiniCMDN):
    def head(self, M, U_I, B, T):
        return (U_I - B) / T  # the legacy head with B standing in for R_E


class WrongGrouping(MiniCMDN):
    def head(self, M, U_I, B, T):
        return M * (U_I + B) / T


class SquashedLogit(MiniCMDN):
    def head(self, M, U_I, B, T):
        return torch.sigmoid((M * U_I + B) / T)


class Additive(MiniCMDN):
    def head(self, M, U_I, B, T):
        return U_I + B


# ---- flow variants -------------------------------------------------------------------------------
class EncoderSeesContext(MiniCMDN):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder(in_dim=11)

    def forward(self, x, c):
        z_I, mu, _ = self.bottleneck(self.encoder(torch.cat([x, c], dim=-1)))
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        return {"logit": self.head(M, U_I, B, T), "z_I": z_I, "mu": mu, "U_I": U_I, "M": M, "B": B, "T": T}


class EnergySkipsBottleneck(MiniCMDN):
    def __init__(self):
        super().__init__()
        self.energy_from_h = nn.Linear(16, 1)

    def forward(self, x, c):
        h = self.encoder(x)
        z_I, mu, _ = self.bottleneck(h)
        U_I = self.energy_from_h(h).squeeze(-1)  # z_I is computed, then bypassed
        M, B, T = self.modulator(c)
        return {"logit": self.head(M, U_I, B, T), "z_I": z_I, "mu": mu, "U_I": U_I, "M": M, "B": B, "T": T}


class ShapeOnlyContext(MiniCMDN):
    def forward(self, x, c):
        z_I, mu, _ = self.bottleneck(self.encoder(x))
        z_I = z_I + 0.0 * torch.zeros_like(c[:, :1])  # reads c's shape, never its values
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        return {"logit": self.head(M, U_I, B, T), "z_I": z_I, "mu": mu, "U_I": U_I, "M": M, "B": B, "T": T}
