"""Noise drawn with a concrete shape, `torch.randn(BATCH, Z)`: plain fx would bake one draw."""

import torch
import torch.nn.functional as F
from torch import nn

BATCH, Z = 8, 3


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = nn.Linear(4, Z)

    def forward(self, x):
        return self.mu(x) + 0.5 * torch.randn(BATCH, Z)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.noisy = Noisy()
        self.head = nn.Linear(Z, 1)

    def forward(self, x):
        z = self.noisy(x)
        return {"z": z, "logit": self.head(z).squeeze(-1)}


def build_model():
    return Model()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(BATCH, 4, generator=g), "y": (torch.rand(BATCH, generator=g) < 0.5).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
