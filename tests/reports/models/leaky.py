"""A two-branch model whose context c leaks into the 'invariant' code z (a forbidden path),
with a nested component (heads.scale) for clustering and --depth tests."""

import torch
from torch import nn


class Heads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Sequential(nn.Linear(3, 1), nn.Softplus())
        self.shift = nn.Linear(3, 1)

    def forward(self, c):
        return self.scale(c).squeeze(-1), self.shift(c).squeeze(-1)


class Leaky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU())
        self.context = nn.Linear(3, 4)
        self.energy = nn.Linear(4, 1)
        self.heads = Heads()

    def forward(self, x, c):
        z = self.encoder(x) + self.context(c)  # the leak: c reaches z
        u = self.energy(z).squeeze(-1)
        m, b = self.heads(c)
        return {"z": z, "U": u, "M": m, "B": b, "logit": m * u + b}


def build_model():
    return Leaky()


def example_batch(batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 2, 4, generator=g), "c": torch.rand(batch_size, 3, generator=g),
            "y": (torch.rand(batch_size, generator=g) < 0.3).float()}


def loss_terms(model, batch, outputs, step):
    bce = nn.functional.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])
    warmup = 1e-3 if step >= 100 else 0.0  # like a KL weight β that starts at 0
    return {"bce": bce, "l2": warmup * outputs["z"].pow(2).mean()}
