"""A tiny model for loss.descent whose `wave` term is far more curved than the default step ε = 1e-3.

wave = sin(K·(s − 1)) / K with s = phase.sum() (4 parameters of 0.25, so s = 1 and the term is 0 at
θ): its gradient is (1, 1, 1, 1), ĝ = (1, 1, 1, 1)/2, and moving ε along ĝ moves s by 2ε, so the
central difference's ratio is exactly sin(2Kε)/(2Kε): 0.046 at ε = 1e-3, 0.455 at 1e-4, 0.993 at
1e-5. The gradient is right; only the step is too long. Computed in float64 so that the float32
parameters' own rounding (which the check accounts for) is the only rounding in the term.
"""

import torch
import torch.nn.functional as F
from torch import nn

from descent_models import Reverse, example_batch  # noqa: F401  (example_batch: an entry point)

K = 1e4  # 2Kε = 20 at the default ε


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 3)
        self.energy = nn.Linear(3, 1)
        self.modulator = nn.Linear(2, 2)
        self.phase = nn.Parameter(torch.full((4,), 0.25))

    def forward(self, x, c):
        mu = self.encoder(x)
        m, b = self.modulator(c).unbind(-1)
        return {"logit": F.softplus(m) * self.energy(torch.tanh(mu)).squeeze(-1) + b, "mu": mu}


def build_model():
    torch.manual_seed(0)
    return Net()


def wave(model):
    return torch.sin(K * (model.phase.double().sum() - 1.0)) / K


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
            "kl": 0.05 * outputs["mu"].pow(2).sum(-1).mean(), "wave": wave(model)}


def reversed_terms(model, batch, outputs, step):
    """The curved term behind a gradient-reversal layer: the ratio is −sin(2Kε)/(2Kε) at every ε."""
    return {**loss_terms(model, batch, outputs, step), "wave": Reverse.apply(wave(model), -1.0)}
