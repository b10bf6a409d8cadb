"""A DeepSEA/Basset-style multi-task sequence CNN (Zhou & Troyanskaya, Nat. Methods 2015;
Kelley, Snoek & Rinn, Genome Res. 2016).

    h      = conv -> relu -> maxpool, twice, over one-hot DNA
    logits = linear(flatten(h))              one logit per task (chromatin feature)
    probs  = sigmoid(logits)                 tasks are independent binary labels (multi-label)
    L      = mean BCE over tasks + 5e-7 * ||W||^2
    every convolution kernel has L2 norm <= MAX_NORM (DeepSEA's max-kernel-norm constraint)

The constraint is part of the model: each convolution's weight is a parametrization that
rescales any kernel whose norm exceeds MAX_NORM, so it holds after every optimiser step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

LENGTH, N_TASKS, MAX_NORM, L2_WEIGHT = 64, 6, 0.9, 5e-7


class MaxNorm(nn.Module):
    """w -> w * min(1, MAX_NORM / ||w_k||) for each output kernel k (dim 0)."""

    def __init__(self, max_norm: float = MAX_NORM):
        super().__init__()
        self.max_norm = max_norm

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        norms = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (self.max_norm / norms).clamp(max=1.0)
        return weight * scale.view(-1, *[1] * (weight.dim() - 1))


def constrained_conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv1d:
    conv = nn.Conv1d(in_channels, out_channels, kernel, padding=kernel // 2)
    parametrize.register_parametrization(conv, "weight", MaxNorm())
    return conv


class DeepSEA(nn.Module):
    def __init__(self, channels: int = 16):
        super().__init__()
        self.conv1 = constrained_conv(4, channels, 9)
        self.conv2 = constrained_conv(channels, channels, 5)
        self.head = nn.Linear(channels * (LENGTH // 16), N_TASKS)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.max_pool1d(F.relu(self.conv1(x)), 4)
        h = F.max_pool1d(F.relu(self.conv2(h)), 4)
        logits = self.head(h.flatten(1))
        return {"logits": logits, "probs": torch.sigmoid(logits)}


def build_model() -> nn.Module:
    return DeepSEA()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 4, (batch_size, LENGTH), generator=generator)
    x = F.one_hot(tokens, 4).float().transpose(1, 2)
    gc = x[:, 1:3].mean((1, 2))
    thresholds = torch.linspace(0.4, 0.6, N_TASKS)
    y = (gc[:, None] > thresholds).float()  # six GC-content tasks, nested: a multi-label target
    return {"x": x, "y": y}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    weights = [p for name, p in model.named_parameters() if name.endswith("weight") or "original" in name]
    return {
        "bce": F.binary_cross_entropy_with_logits(outputs["logits"], batch["y"]),
        "l2": L2_WEIGHT * sum(w.pow(2).sum() for w in weights),
    }
