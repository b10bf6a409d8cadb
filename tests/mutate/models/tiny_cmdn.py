"""A small CMDN for the mutation tests: every operator has a target here.

    h = encoder(x); (z_I, mu, logvar) = bottleneck(h); U_I = energy(refine(z_I))
    (M, B, T) = modulator(c); logit = (M * U_I + B) / T
"""

import torch
import torch.nn.functional as F
from torch import nn

X_DIM, C_DIM, Z_DIM = 6, 3, 4


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(X_DIM, 8), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu_head = nn.Linear(8, Z_DIM)
        self.logvar_head = nn.Linear(8, Z_DIM)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        if self.training:
            z_I = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            z_I = mu
        return z_I, mu, logvar

    @staticmethod
    def kl(mu, logvar):
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


class Refine(nn.Module):
    """Shape-preserving, so it can be bypassed by its input."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(Z_DIM, Z_DIM)

    def forward(self, z):
        return torch.tanh(self.linear(z))


class Energy(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(Z_DIM, 1)

    def forward(self, z):
        return self.linear(z).squeeze(-1)


class Modulator(nn.Module):
    """M from the cell columns, T from the last (accessibility) column, B from all: the scale of
    (M, B, T) can then only be a constant (the identifiability check)."""

    def __init__(self):
        super().__init__()
        self.m_trunk = nn.Sequential(nn.Linear(C_DIM - 1, 8), nn.ReLU())
        self.b_trunk = nn.Sequential(nn.Linear(C_DIM, 8), nn.ReLU())
        self.t_trunk = nn.Sequential(nn.Linear(1, 8), nn.ReLU())
        self.m_head, self.b_head, self.t_head = nn.Linear(8, 1), nn.Linear(8, 1), nn.Linear(8, 1)

    def forward(self, c):
        M = F.softplus(self.m_head(self.m_trunk(c[:, :-1]))).squeeze(-1) + 1e-3
        B = self.b_head(self.b_trunk(c)).squeeze(-1)
        T = F.softplus(self.t_head(self.t_trunk(c[:, -1:]))).squeeze(-1) + 0.05
        return M, B, T


class TinyCMDN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.bottleneck = Bottleneck()
        self.refine = Refine()
        self.energy = Energy()
        self.modulator = Modulator()

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(self.refine(z_I))
        M, B, T = self.modulator(c)
        logit = (M * U_I + B) / T
        return {"logit": logit, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I, "M": M, "B": B, "T": T}


def build_model():
    return TinyCMDN()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, X_DIM, generator=g)
    c = torch.randn(batch_size, C_DIM, generator=g)
    y = (torch.rand(batch_size, generator=g) < torch.sigmoid(x[:, 0] * (1 + c[:, 0].abs()))).float()
    return {"x": x, "c": c, "y": y}


def loss_terms(model, batch, outputs, step):
    return {
        "bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "kl": 0.01 * model.bottleneck.kl(outputs["mu"], outputs["logvar"]),
    }
