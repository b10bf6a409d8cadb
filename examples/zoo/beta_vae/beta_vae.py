"""beta-VAE (Higgins et al., ICLR 2017): a VAE whose KL term is weighted by beta > 1.

    q(z|x) = Normal(mu(x), exp(0.5 * logvar(x)))      encoder
    z      = q.rsample()                             reparameterised: gradients reach mu and sigma
    x_hat  = decoder(z)
    L      = ||x - x_hat||^2 + beta * KL(q(z|x) || N(0, I)),  beta = 4

The sample is drawn with ``torch.distributions`` in a plain function, ``sample_code``; in eval
mode the code is the posterior mean.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

IN_DIM, Z_DIM, BETA = 24, 4, 4.0


def sample_code(posterior: Normal, training: bool) -> torch.Tensor:
    return posterior.rsample() if training else posterior.mean


class BetaVAE(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(IN_DIM, hidden), nn.ReLU())
        self.mu_head = nn.Linear(hidden, Z_DIM)
        self.logvar_head = nn.Linear(hidden, Z_DIM)
        self.decoder = nn.Sequential(nn.Linear(Z_DIM, hidden), nn.ReLU(), nn.Linear(hidden, IN_DIM))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        std = torch.exp(0.5 * logvar)
        z = sample_code(Normal(mu, std), self.training)
        return {"x_hat": self.decoder(z), "z": z, "mu": mu, "std": std}


def build_model() -> nn.Module:
    return BetaVAE()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(batch_size, Z_DIM, generator=generator)  # a few generative factors
    mixing = torch.randn(Z_DIM, IN_DIM, generator=torch.Generator().manual_seed(99))
    return {"x": torch.tanh(factors @ mixing) + 0.05 * torch.randn(batch_size, IN_DIM, generator=generator)}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    posterior = Normal(outputs["mu"], outputs["std"])
    prior = Normal(torch.zeros_like(outputs["mu"]), torch.ones_like(outputs["std"]))
    return {
        "recon": (outputs["x_hat"] - batch["x"]).pow(2).sum(-1).mean(),
        "kl": BETA * kl_divergence(posterior, prior).sum(-1).mean(),
    }
