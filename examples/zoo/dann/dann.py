"""DANN: domain-adversarial training (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

    f       = features(x)                               shared feature extractor G_f
    y_hat   = label_head(f)                             label predictor G_y (source rows only)
    d_hat   = domain_head(GRL_alpha(f))                 domain classifier G_d
    GRL_alpha: identity forward, gradient * (-alpha) backward
    alpha(p) = 2 / (1 + exp(-10 p)) - 1,  p = step / TOTAL_STEPS  (the paper's schedule)

Both losses are minimised by one optimiser: G_d descends the domain loss, while G_f, behind the
reversal, ascends it (features that confuse the domain classifier). ``alpha`` is a forward
argument that changes with the training step, so ``example_batch`` takes the step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IN_DIM, FEAT_DIM, N_CLASSES, TOTAL_STEPS = 16, 16, 3, 10_000


def alpha_schedule(step: int) -> float:
    p = min(max(step / TOTAL_STEPS, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


class GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(alpha)
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (alpha,) = ctx.saved_tensors
        return -alpha * grad_output, None


def reverse_gradient(features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return GradientReversal.apply(features, alpha)


class DANN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(IN_DIM, 32), nn.ReLU(), nn.Linear(32, FEAT_DIM), nn.ReLU())
        self.label_head = nn.Linear(FEAT_DIM, N_CLASSES)
        self.domain_head = nn.Sequential(nn.Linear(FEAT_DIM, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {"class_logits": self.label_head(f), "domain_logit": self.domain_head(reverse_gradient(f, alpha)).squeeze(-1),
                "f": f}


def build_model() -> nn.Module:
    return DANN()


def example_batch(batch_size: int, seed: int, step: int = 0) -> dict[str, torch.Tensor]:
    """Half source rows (labelled), half target rows (shifted inputs, labels unused)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, IN_DIM, generator=generator)
    domain = (torch.arange(batch_size) >= batch_size // 2).float()
    x = x + 1.5 * domain[:, None] * torch.linspace(-1, 1, IN_DIM)  # the domain shift
    y = x[:, :N_CLASSES].argmax(-1)
    return {"x": x, "alpha": torch.tensor(alpha_schedule(step)), "y": y, "domain": domain}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    source = batch["domain"] < 0.5
    return {
        "label": F.cross_entropy(outputs["class_logits"][source], batch["y"][source]),
        "domain": F.binary_cross_entropy_with_logits(outputs["domain_logit"], batch["domain"]),
    }
