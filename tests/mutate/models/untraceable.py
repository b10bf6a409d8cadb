"""Data-dependent control flow in forward: torch.fx cannot trace it."""

import torch
import torch.nn.functional as F
from torch import nn


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 1)

    def forward(self, x):
        out = self.body(x).squeeze(-1)
        if out.sum() > 0:  # a Python branch on a tensor value
            out = out * 0.5
        return {"logit": out}


def build_model():
    return Gated()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 4, generator=g), "y": (torch.rand(batch_size, generator=g) < 0.5).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
