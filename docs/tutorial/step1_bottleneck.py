"""Tutorial step 1: the legacy model with the design's information bottleneck.

Changed from models/legacy_energy.py: the encoder now returns features h, and a `bottleneck`
module samples z_I = mu + exp(0.5*logvar) * eps while training (z_I = mu in eval); a KL term
with a beta warm-up joins the losses; energy_head is renamed `energy`, as the spec names it.
Still legacy: the additive head (U_I - R_E) / T, the shared temperature and the L_orth / L_domain
losses. Model-file contract: build_model, example_batch, loss_terms.
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
from _batches import CONTEXT_DIM, DESCRIPTOR_DIM  # noqa: E402
from _batches import example_batch as example_batch  # noqa: E402,F401


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.alpha * grad_output, None


class DomainAdversary(nn.Module):
    def __init__(self, z_dim, hidden=32):
        super().__init__()
        self.classifier = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, DESCRIPTOR_DIM))

    def forward(self, z_I):
        return self.classifier(GradReverse.apply(z_I, 1.0))


class Bottleneck(nn.Module):  # NEW: q(z_I | x) = N(mu, exp(logvar))
    def __init__(self, in_dim, z_dim=32):
        super().__init__()
        self.mu_head, self.logvar_head = nn.Linear(in_dim, z_dim), nn.Linear(in_dim, z_dim)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z_I = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return z_I, mu, logvar


class Step1(nn.Module):
    def __init__(self, z_dim=32, channels=64):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(4, channels, 11, padding=5), nn.ReLU(),
                                     nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.bottleneck = Bottleneck(channels, z_dim)
        self.env_encoder = nn.Sequential(nn.Linear(CONTEXT_DIM, z_dim), nn.ReLU(), nn.Linear(z_dim, z_dim))
        self.energy = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        self.resistance_head = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.domain_head = DomainAdversary(z_dim)

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        z_E = self.env_encoder(c)
        U_I = self.energy(z_I).squeeze(-1)
        R_E = F.softplus(self.resistance_head(z_E)).squeeze(-1)
        T = self.log_temperature.exp().expand_as(U_I)
        return {"logit": (U_I - R_E) / T, "z_I": z_I, "mu": mu, "logvar": logvar, "z_E": z_E,
                "U_I": U_I, "R_E": R_E, "T": T, "domain_pred": self.domain_head(z_I)}


def build_model():
    return Step1()


def beta(step):  # NEW: the KL weight starts at 0 and warms up
    return 1e-3 * min(max((step - 200) / 800, 0.0), 1.0)


def loss_terms(model, batch, outputs, step):
    a = F.normalize(outputs["z_I"] - outputs["z_I"].mean(0), dim=1)
    b = F.normalize(outputs["z_E"] - outputs["z_E"].mean(0), dim=1)
    mu, logvar = outputs["mu"], outputs["logvar"]
    return {
        "ep": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "orth": 0.1 * (a.T @ b).pow(2).mean(),
        "domain": 0.1 * F.mse_loss(outputs["domain_pred"], batch["c"][:, :DESCRIPTOR_DIM]),
        "sparse": 0.01 * outputs["z_E"].abs().mean(),
        "kl": beta(step) * 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean(),  # NEW
    }
