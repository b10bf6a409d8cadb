"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017).

    z_e   = encoder(x)
    k     = argmin_j ||z_e - e_j||,  z_q = e_k                 nearest codebook vector
    z_st  = z_e + sg(z_q - z_e)                               straight-through: forward z_q,
                                                              backward the identity to z_e
    x_hat = decoder(z_st)
    L = ||x - x_hat||^2 + ||sg(z_e) - z_q||^2 + beta ||z_e - sg(z_q)||^2,  beta = 0.25
        recon            codebook (moves e)     commitment (moves the encoder)
"""

from __future__ import annotations

import torch
from torch import nn

IN_DIM, CODE_DIM, N_CODES, BETA = 12, 4, 8, 0.25


class Codebook(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(N_CODES, CODE_DIM) * 0.5)

    def forward(self, z_e: torch.Tensor) -> torch.Tensor:
        index = torch.cdist(z_e, self.embedding).argmin(dim=-1)
        return self.embedding[index]


class VQVAE(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(IN_DIM, hidden), nn.ReLU(), nn.Linear(hidden, CODE_DIM))
        self.codebook = Codebook()
        self.decoder = nn.Sequential(nn.Linear(CODE_DIM, hidden), nn.ReLU(), nn.Linear(hidden, IN_DIM))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z_e = self.encoder(x)
        z_q = self.codebook(z_e)
        z_st = z_e + (z_q - z_e).detach()
        return {"x_hat": self.decoder(z_st), "z_e": z_e, "z_q": z_q, "z_st": z_st}


def build_model() -> nn.Module:
    return VQVAE()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, IN_DIM, generator=torch.Generator().manual_seed(7))
    pick = torch.randint(0, 4, (batch_size,), generator=generator)
    return {"x": centres[pick] + 0.1 * torch.randn(batch_size, IN_DIM, generator=generator)}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    z_e, z_q = outputs["z_e"], outputs["z_q"]
    return {
        "recon": (outputs["x_hat"] - batch["x"]).pow(2).sum(-1).mean(),
        "codebook": (z_e.detach() - z_q).pow(2).sum(-1).mean(),
        "commitment": BETA * (z_e - z_q.detach()).pow(2).sum(-1).mean(),
    }
