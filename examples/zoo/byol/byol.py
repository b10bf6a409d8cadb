"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020).

    online:  y = encoder(v), z = projector(y), p = predictor(z)
    target:  z' = target_projector(target_encoder(v'))   an EMA copy, never trained by the loss
    L = 2 - 2 cos(p(v1), sg(z'(v2))) + (the symmetric term with v1, v2 swapped)

The target network's parameters are frozen (requires_grad=False; the trainer updates them by
EMA) and its output is computed under stop-gradient. Two augmented views arrive in the batch.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

IN_DIM, REP_DIM, PROJ_DIM = 16, 16, 8


def mlp(in_dim: int, out_dim: int, hidden: int = 32) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class BYOL(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = mlp(IN_DIM, REP_DIM)
        self.projector = mlp(REP_DIM, PROJ_DIM)
        self.predictor = mlp(PROJ_DIM, PROJ_DIM)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for parameter in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            parameter.requires_grad_(False)

    def online(self, view: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.encoder(view)))

    def target(self, view: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target_projector(self.target_encoder(view))

    @torch.no_grad()
    def update_target(self, momentum: float = 0.99) -> None:
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for p_online, p_target in zip(online.parameters(), target.parameters()):
                p_target.mul_(momentum).add_(p_online, alpha=1 - momentum)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"p1": self.online(view1), "p2": self.online(view2),
                "t1": self.target(view1), "t2": self.target(view2)}


def build_model() -> nn.Module:
    return BYOL()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, IN_DIM, generator=generator)
    augment = lambda: x * (1 + 0.1 * torch.randn(x.shape, generator=generator)) + 0.1 * torch.randn(x.shape, generator=generator)  # noqa: E731
    return {"view1": augment(), "view2": augment()}


def regression_loss(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (2 - 2 * F.cosine_similarity(p, target, dim=-1)).mean()


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    return {"byol": regression_loss(outputs["p1"], outputs["t2"].detach())
            + regression_loss(outputs["p2"], outputs["t1"].detach())}
