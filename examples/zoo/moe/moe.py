"""A sparsely-gated mixture of experts (Shazeer et al., ICLR 2017; the balance loss of Fedus et al.,
Switch Transformer, JMLR 2022).

    gates  = softmax(gate(x))                     over experts, per example
    top-2 routing: each example's output is the gate-weighted sum of its two best experts,
                   weights renormalised over the two
    balance = N * sum_i f_i * P_i                 f_i: fraction of examples routed to expert i
                                                  (no gradient), P_i: mean gate probability
                                                  (differentiable): pushes toward uniform load
    L = MSE(y, y_hat) + 0.01 * balance
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_DIM, OUT_DIM, N_EXPERTS, TOP_K, BALANCE_WEIGHT = 8, 2, 4, 2, 0.01


class MixtureOfExperts(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.gate = nn.Linear(IN_DIM, N_EXPERTS)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(IN_DIM, hidden), nn.ReLU(), nn.Linear(hidden, OUT_DIM)) for _ in range(N_EXPERTS)
        )

    def route(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.gate(x), dim=-1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        gates = self.route(x)
        weights, chosen = gates.topk(TOP_K, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        expert_out = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, OUT)
        picked = expert_out.gather(1, chosen[..., None].expand(-1, -1, OUT_DIM))
        y_hat = (weights[..., None] * picked).sum(1)
        return {"y_hat": y_hat, "gates": gates, "chosen": chosen}


def build_model() -> nn.Module:
    return MixtureOfExperts()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, IN_DIM, generator=generator)
    regime = (x[:, 0] > 0).float()[:, None]  # two regimes, each best served by its own experts
    y = regime * x[:, 1:3] - (1 - regime) * x[:, 3:5].pow(2)
    return {"x": x, "y": y}


def balance_loss(gates: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    routed = F.one_hot(chosen[:, 0], N_EXPERTS).float().mean(0)  # f_i, top-1 assignment
    return N_EXPERTS * (routed * gates.mean(0)).sum()


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    return {
        "task": F.mse_loss(outputs["y_hat"], batch["y"]),
        "balance": BALANCE_WEIGHT * balance_loss(outputs["gates"], outputs["chosen"]),
    }
