"""Deep Variational Information Bottleneck (Alemi, Fischer, Dillon & Murphy, ICLR 2017).

    (mu, s)  = encoder(x).chunk(2)          one Linear head, its two halves
    std      = softplus(s - 5)              the paper's sigma parameterisation
    z        = mu + std * eps,  eps ~ N(0, I)   drawn in a method of the root module
    logits   = decoder(z)                   a softmax classifier q(y | z)
    L        = CE(y, logits) + beta * KL(N(mu, std^2) || N(0, I)),  beta = 1e-3

At evaluation the paper averages predictions over samples; this implementation uses the mean
(z = mu), the common choice, and documents it in the spec. The noise is drawn in
``VIB.reparameterize``, a method of the top-level module: the layout most VIB code uses.
Model-file contract: build_model(), example_batch(batch_size, seed), loss_terms(...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_DIM, Z_DIM, N_CLASSES, BETA = 20, 4, 3, 1e-3


class VIB(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(IN_DIM, hidden), nn.ReLU(), nn.Linear(hidden, 2 * Z_DIM))
        self.decoder = nn.Linear(Z_DIM, N_CLASSES)

    def reparameterize(self, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + std * torch.randn_like(std)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, s = self.encoder(x).chunk(2, dim=-1)
        std = F.softplus(s - 5.0)
        z = self.reparameterize(mu, std)
        return {"logits": self.decoder(z), "z": z, "mu": mu, "std": std}


def build_model() -> nn.Module:
    return VIB()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, IN_DIM, generator=generator)
    y = (x[:, :N_CLASSES] * 2.0).argmax(dim=-1)  # a learnable rule: the largest of the first 3 features
    return {"x": x, "y": y}


def kl_to_standard_normal(mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mu.pow(2) + std.pow(2) - 1.0 - 2.0 * torch.log(std)).sum(-1).mean()


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    return {
        "ce": F.cross_entropy(outputs["logits"], batch["y"]),
        "kl": BETA * kl_to_standard_normal(outputs["mu"], outputs["std"]),
    }
