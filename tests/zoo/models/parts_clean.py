"""A modulator that reads c = (descriptor, accessibility): M from the descriptor only (the design), B from both.
Variants (parts_*.py) change only how M reads c."""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.energy = nn.Linear(5, 1)
        self.concentration = nn.Linear(3, 1)
        self.shift = nn.Linear(4, 1)

    def m_of(self, c):
        return F.softplus(self.concentration(c[:, :-1])).squeeze(-1)

    def forward(self, x, c):
        M = self.m_of(c)
        B = self.shift(c).squeeze(-1)
        return {"M": M, "B": B, "logit": M * self.energy(x).squeeze(-1) + B}


def build_model():
    return Net()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    x, c = torch.randn(batch_size, 5, generator=g), torch.randn(batch_size, 4, generator=g)
    return {"x": x, "c": c, "y": (x[:, 0] > 0).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
