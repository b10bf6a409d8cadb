"""The legacy "energy dissipation" model: the code that was actually trained instead of CMDN.

Kept on purpose, faithfully: it is the counter-example ``specs/cmdn.yaml`` must reject and the
baseline the benchmark compares CMDN against. What it computes (the seed, 实际实现):

    z_I = encoder(x)                 deterministic: no bottleneck noise, no KL
    z_E = env_encoder(c)             the "cell-line embedding"
    U_I = energy_head(z_I)           binding energy
    R_E = softplus(resistance_head(z_E)) ≥ 0
    T   = exp(log_temperature)       one temperature shared by every cell line
    P   = sigmoid((U_I − R_E) / T)   additive: (U_I + δ, R_E + δ) predicts the same thing

    L = L_ep + λ_orth·L_orth + λ_domain·L_domain + λ_sparse·L_sparse

with L_orth pushing z_I ⊥ z_E and L_domain a gradient-reversal adversary that tries to predict the
cell context from z_I (the encoder is trained to defeat it). The seed names the λ's but not their
values; the ones below are the usual defaults for this family (DSN/DANN-style) and train stably.
It was trained end to end in one stage, so it defines no CURRICULUM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from _batches import CONTEXT_DIM, DESCRIPTOR_DIM
from _batches import example_batch as example_batch  # contract entry point, shared with CMDN

LAMBDAS = {"orth": 0.1, "domain": 0.1, "sparse": 0.01}
GRL_ALPHA = 1.0  # gradient-reversal strength: the encoder receives −α·∂L_domain/∂z_I


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by −alpha (Ganin & Lempitsky)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.alpha * grad_output, None


class GradientReversal(nn.Module):
    def __init__(self, alpha: float = GRL_ALPHA):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GradReverse.apply(x, self.alpha)


class DomainAdversary(nn.Module):
    """Predicts the cell-line descriptor (the domain) from z_I through a gradient-reversal layer."""

    def __init__(self, z_dim: int, domain_dim: int = DESCRIPTOR_DIM, hidden: int = 32,
                 alpha: float = GRL_ALPHA):
        super().__init__()
        self.grl = GradientReversal(alpha)
        self.classifier = nn.Sequential(
            nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, domain_dim)
        )

    def forward(self, z_I: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.grl(z_I))


class LegacyEnergyModel(nn.Module):
    def __init__(self, context_dim: int = CONTEXT_DIM, z_dim: int = 32, channels: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(  # motif scanner -> invariant features z_I
            nn.Conv1d(4, channels, kernel_size=11, padding=5),
            nn.ReLU(),
            nn.AdaptiveMaxPool1d(1),
            nn.Flatten(),
            nn.Linear(channels, z_dim),
        )
        self.env_encoder = nn.Sequential(
            nn.Linear(context_dim, z_dim), nn.ReLU(), nn.Linear(z_dim, z_dim)
        )
        self.energy_head = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        self.resistance_head = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.domain_head = DomainAdversary(z_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        z_I = self.encoder(x)
        z_E = self.env_encoder(c)
        U_I = self.energy_head(z_I).squeeze(-1)
        R_E = F.softplus(self.resistance_head(z_E)).squeeze(-1)  # resistance only dissipates
        T = self.log_temperature.exp().expand_as(U_I)
        logit = (U_I - R_E) / T
        return {"logit": logit, "z_I": z_I, "z_E": z_E, "U_I": U_I, "R_E": R_E, "T": T,
                "domain_pred": self.domain_head(z_I)}


def build_model() -> LegacyEnergyModel:
    return LegacyEnergyModel()


def orthogonality_loss(z_I: torch.Tensor, z_E: torch.Tensor) -> torch.Tensor:
    """DSN "difference" loss: mean squared cross-correlation of the centred, L2-normalised codes."""
    a = F.normalize(z_I - z_I.mean(dim=0), dim=1)
    b = F.normalize(z_E - z_E.mean(dim=0), dim=1)
    return (a.T @ b).pow(2).mean()


def loss_terms(model: LegacyEnergyModel, batch: dict[str, torch.Tensor],
               outputs: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
    """L_ep, λ_orth·L_orth, λ_domain·L_domain, λ_sparse·L_sparse; constant weights, so ``step`` is unused."""
    descriptor = batch["c"][:, :DESCRIPTOR_DIM]
    return {
        "ep": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "orth": LAMBDAS["orth"] * orthogonality_loss(outputs["z_I"], outputs["z_E"]),
        "domain": LAMBDAS["domain"] * F.mse_loss(outputs["domain_pred"], descriptor),
        "sparse": LAMBDAS["sparse"] * outputs["z_E"].abs().mean(),
    }
