"""Tutorial step 2: step 1 with the design's multiplicative modulation.

Changed from step1_bottleneck.py: env_encoder, resistance_head and the one shared
log_temperature are replaced by a `modulator` psi(c) -> (M > 0, B, T > 0) (M from the cell
descriptor, T from accessibility with T(0.5) = 1, B from both), and the prediction
becomes logit = (M * U_I + B) / T: multiplicative, so (U_I + d) no longer predicts the same thing
under any shift of another term. L_orth and L_sparse went with z_E. Still legacy: the losses
(L_ep, the gradient-reversal L_domain) and no ranking loss. Model-file contract: build_model,
example_batch, loss_terms.
"""


import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
from _batches import CONTEXT_DIM, DESCRIPTOR_DIM  # noqa: E402
from _batches import example_batch as example_batch  # noqa: E402,F401


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.alpha * grad_output, None


class DomainAdversary(nn.Module):
    def __init__(self, z_dim, hidden=32):
        super().__init__()
        self.classifier = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, DESCRIPTOR_DIM))

    def forward(self, z_I):
        return self.classifier(GradReverse.apply(z_I, 1.0))


class Bottleneck(nn.Module):  # NEW: q(z_I | x) = N(mu, exp(logvar))
    def __init__(self, in_dim, z_dim=32):
        super().__init__()
        self.mu_head, self.logvar_head = nn.Linear(in_dim, z_dim), nn.Linear(in_dim, z_dim)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z_I = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return z_I, mu, logvar


class Modulator(nn.Module):  # NEW: psi(c) -> (M, B, T); each part sees what the design lets it see
    def __init__(self, hidden=32):
        super().__init__()
        self.m = nn.Sequential(nn.Linear(CONTEXT_DIM - 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.b = nn.Sequential(nn.Linear(CONTEXT_DIM, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.t = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))  # a bias cancels

    def forward(self, c):
        descriptor, access = c[:, :-1], c[:, -1:]  # the spec's input parts
        M = F.softplus(self.m(descriptor)).squeeze(-1) + 1e-3  # TF concentration: the cell line only; > 0
        reference = torch.full_like(access[:1], 0.5)  # T = 1 at accessibility 0.5 pins the scale
        T = 0.05 + 0.95 * torch.exp(3 * torch.tanh((self.t(access) - self.t(reference)).squeeze(-1) / 3))
        return M, self.b(c).squeeze(-1), T


class Step2(nn.Module):
    def __init__(self, z_dim=32, channels=64):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(4, channels, 11, padding=5), nn.ReLU(),
                                     nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.bottleneck = Bottleneck(channels, z_dim)
        self.energy = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        self.modulator = Modulator()
        self.domain_head = DomainAdversary(z_dim)

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I).squeeze(-1)
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "mu": mu, "logvar": logvar,
                "U_I": U_I, "M": M, "B": B, "T": T, "domain_pred": self.domain_head(z_I)}


def build_model():
    return Step2()


def beta(step):
    return 1e-3 * min(max((step - 200) / 800, 0.0), 1.0)


def loss_terms(model, batch, outputs, step):
    mu, logvar = outputs["mu"], outputs["logvar"]
    return {
        "ep": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "domain": 0.1 * F.mse_loss(outputs["domain_pred"], batch["c"][:, :DESCRIPTOR_DIM]),
        "kl": beta(step) * 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean(),
    }
