"""A miniature of the legacy additive-energy model: z_I = f(x) with no noise, a cell embedding -> R_E,
logit = (U_I - R_E) / T with one shared temperature, a GRL domain head, and a data-dependent `if`
(so fx fails and the eager capture must take over)."""

import torch
import torch.nn.functional as F
from structural_zoo import example_batch  # noqa: F401  (contract entry point)
from torch import nn


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Legacy(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.env_encoder = nn.Linear(3, 4)
        self.energy_head = nn.Linear(4, 1)
        self.resistance_head = nn.Linear(4, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.domain_head = nn.Linear(4, 3)

    def forward(self, x, c):
        if x.dim() > 2:
            x = x.flatten(1)
        z_I = self.encoder(x)
        z_E = self.env_encoder(c)
        U_I = self.energy_head(z_I).squeeze(-1)
        R_E = F.softplus(self.resistance_head(z_E)).squeeze(-1)
        T = self.log_temperature.exp()
        logit = (U_I - R_E) / T
        domain = self.domain_head(GradReverse.apply(z_I))
        return {"logit": logit, "z_I": z_I, "z_E": z_E, "U_I": U_I, "R_E": R_E, "T": T, "domain": domain}


def build_model():
    return Legacy()


def loss_terms(model, batch, outputs, step):
    return {"ep": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
