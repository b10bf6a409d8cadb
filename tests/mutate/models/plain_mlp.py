"""A model with none of the design's structure: no noise, no context, no positivity, one loss."""

import torch
import torch.nn.functional as F
from torch import nn


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 1)

    def forward(self, x):
        return {"logit": self.body(x).squeeze(-1)}


def build_model():
    return Plain()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 5, generator=g), "y": (torch.rand(batch_size, generator=g) < 0.5).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
