"""A small CMDN for trainer tests: same structure as models/cmdn.py, seconds to train.

x (B, 4, L) one-hot DNA (any L), c (B, 9) = 8 descriptor columns + accessibility.
The LOSS_SCALE hook lets tests make the loss non-finite from a given step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_DIM = 9
# Tests make the loss NaN from this step on (in-process by assignment, in a subprocess by env var).
NAN_FROM_STEP: int | None = int(os.environ["TINY_NAN_FROM_STEP"]) if os.environ.get("TINY_NAN_FROM_STEP") else None


@dataclass(frozen=True)
class BetaSchedule:
    start_step: int = 2
    end_step: int = 10
    beta_max: float = 1e-2

    def __call__(self, step: int) -> float:
        ramp = (step - self.start_step) / (self.end_step - self.start_step)
        return self.beta_max * min(max(ramp, 0.0), 1.0)


BETA_SCHEDULE = BetaSchedule()
CURRICULUM = {
    "invariant": {"train": ["encoder", "bottleneck", "energy"], "fraction": 0.3},
    "modulator": {"train": ["modulator"], "fraction": 0.2},
    "joint": {"train": ["encoder", "bottleneck", "energy", "modulator"], "fraction": 0.5},
}


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.scan = nn.Conv1d(4, 8, 7, padding=3)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return F.relu(self.proj(F.relu(self.scan(x)).amax(dim=-1)))


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu_head = nn.Linear(8, 4)
        self.logvar_head = nn.Linear(8, 4)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        if self.training:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            z = mu
        return z, mu, logvar


class Modulator(nn.Module):
    """M from the descriptor, T from accessibility, B from both: the scale of (M, B, T) is then
    a constant (the identifiability check), not a function of c."""

    def __init__(self):
        super().__init__()
        self.m, self.b, self.t = nn.Linear(CONTEXT_DIM - 1, 1), nn.Linear(CONTEXT_DIM, 1), nn.Linear(1, 1)

    def forward(self, c):
        descriptor, access = c[:, :-1], c[:, -1:]
        M = F.softplus(self.m(descriptor)).squeeze(-1) + 1e-3
        T = F.softplus(self.t(access)).squeeze(-1) + 0.05
        return M, self.b(c).squeeze(-1), T


class TinyCMDN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.bottleneck = Bottleneck()
        self.energy = nn.Linear(4, 1)
        self.modulator = Modulator()

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I).squeeze(-1)
        M, B, T = self.modulator(c)
        logit = (M * U_I + B) / T
        return {"logit": logit, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I, "M": M, "B": B, "T": T}


def build_model():
    return TinyCMDN()


def example_batch(batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    bases = torch.randint(0, 4, (batch_size, 32), generator=g)
    x = F.one_hot(bases, 4).permute(0, 2, 1).float()
    c = torch.randn(batch_size, CONTEXT_DIM, generator=g)
    c[:, -1] = torch.rand(batch_size, generator=g)
    score = x[:, 0, :].sum(-1) / 8 - 1 + c[:, 0]
    y = torch.bernoulli(torch.sigmoid(2 * score), generator=g)
    return {"x": x, "c": c, "y": y, "cell": torch.randint(0, 4, (batch_size,), generator=g)}


def loss_terms(model, batch, outputs, step):
    logit, y = outputs["logit"], batch["y"]
    kl = 0.5 * (outputs["mu"].pow(2) + outputs["logvar"].exp() - 1 - outputs["logvar"]).sum(-1).mean()
    positive, negative = logit[y > 0.5], logit[y <= 0.5]
    rank = (F.softplus(negative[None, :] - positive[:, None]).mean() if len(positive) and len(negative)
            else logit.sum() * 0.0)
    bce = F.binary_cross_entropy_with_logits(logit, y)
    if NAN_FROM_STEP is not None and step >= NAN_FROM_STEP:
        bce = bce * float("nan")
    return {"bce": bce, "kl": BETA_SCHEDULE(step) * kl, "rank": 0.5 * rank}
