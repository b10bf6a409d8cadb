"""Tiny models for probe.batch_independence and the positivity search; specs pick one with
`entry_points.build_model`.

`build_model` is per-example (BatchNorm in the modulator, which uses running statistics in eval);
each other builder leaks one kind of batch statistic into a symbol, or breaks positivity only at
contexts random draws almost never reach.
"""

import torch
import torch.nn.functional as F
from torch import nn

X_DIM, C_DIM = 5, 16


class Modulator(nn.Module):
    """(M, B, T) from c; `leak` picks how T sees the rest of the batch (None: it does not)."""

    def __init__(self, leak=None):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(C_DIM, 8), nn.BatchNorm1d(8), nn.Tanh())
        self.heads = nn.Linear(8, 3)
        self.leak = leak

    def forward(self, c):
        m, b, t = self.heads(self.trunk(c)).unbind(-1)
        T = F.softplus(t) + 0.05
        if self.leak == "mean":  # one temperature for the whole batch (the context.shared mutant)
            T = T.mean(0, keepdim=True).expand_as(T)
        elif self.leak == "cumsum":  # each example sees the ones before it: invisible to a half/half split
            T = T + 1e-3 * torch.cumsum(c[:, 0], 0)
        elif self.leak == "batchnorm":  # batch statistics even in eval
            T = F.softplus(F.batch_norm(t[:, None], None, None, training=True).squeeze(-1)) + 0.05
        return F.softplus(m) + 1e-3, b, T


class Net(nn.Module):
    def __init__(self, leak=None):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(X_DIM, 8), nn.ReLU(), nn.Linear(8, 1))
        self.modulator = Modulator(leak)

    def forward(self, x, c):
        U_I = self.encoder(x).squeeze(-1)
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "U_I": U_I, "M": M, "B": B, "T": T}


class GlobalTemperature(Net):
    """T is a 0-d tensor: a learned parameter (independent of every example) or the batch mean."""

    def __init__(self, from_batch=False):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(0.2))
        self.from_batch = from_batch

    def forward(self, x, c):
        U_I = self.encoder(x).squeeze(-1)
        M, B, _ = self.modulator(c)
        T = self.log_t.exp() * (1 + 0.1 * c[:, 0].sigmoid().mean() if self.from_batch else 1.0)
        return {"logit": (M * U_I + B) / T, "U_I": U_I, "M": M, "B": B, "T": T}


class PooledOutput(Net):
    """B is one row per batch, (1,): not a per-example symbol at all."""

    def forward(self, x, c):
        outputs = super().forward(x, c)
        outputs["B"] = outputs["B"].mean(0, keepdim=True)
        return outputs


class LinearTemperature(nn.Module):
    """T = 1 + w·c with no softplus: negative only near one corner of the context box.

    |w_i| = 1.5 / (scale·C_DIM) per feature (scale 100, c ~ N(0, 1)), so T = -0.5 at the corner
    sign(c) = -sign(w) at 100 std devs, and T > 0 unless about 14 of 16 signs agree: random
    draws almost never see it, one signed-gradient step finds it.
    """

    def __init__(self, positive=False):
        super().__init__()
        self.encoder = nn.Linear(X_DIM, 1)
        signs = torch.where(torch.arange(C_DIM) % 3 == 0, 1.0, -1.0)
        self.t_head = nn.Linear(C_DIM, 1)
        with torch.no_grad():
            self.t_head.weight.copy_(1.5 / (100.0 * C_DIM) * signs[None, :])
            self.t_head.bias.fill_(1.0)
        self.positive = positive

    def forward(self, x, c):
        U_I = self.encoder(x).squeeze(-1)
        t = self.t_head(c).squeeze(-1)
        T = F.softplus(4 * t) + 0.05 if self.positive else t
        M = torch.ones_like(U_I)
        return {"logit": U_I / T, "U_I": U_I, "M": M, "B": torch.zeros_like(U_I), "T": T}


def _seeded(factory):
    torch.manual_seed(0)
    return factory()


def _warmed(model):
    """A few train-mode passes so BatchNorm's running statistics are not the identity."""
    with torch.no_grad():
        for seed in range(3):
            batch = example_batch(16, 100 + seed)
            model(batch["x"], batch["c"])
    return model


def build_model():
    return _seeded(lambda: _warmed(Net()))


def build_mean_temperature():
    return _seeded(lambda: _warmed(Net("mean")))


def build_cumulative():
    return _seeded(lambda: _warmed(Net("cumsum")))


def build_batchnorm_in_eval():
    return _seeded(lambda: _warmed(Net("batchnorm")))


def build_global_temperature():
    return _seeded(lambda: _warmed(GlobalTemperature()))


def build_batch_temperature():
    return _seeded(lambda: _warmed(GlobalTemperature(from_batch=True)))


def build_pooled():
    return _seeded(lambda: _warmed(PooledOutput()))


def build_linear_temperature():
    return _seeded(LinearTemperature)


def build_softplus_temperature():
    return _seeded(lambda: LinearTemperature(positive=True))


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, X_DIM, generator=g), "c": torch.randn(batch_size, C_DIM, generator=g),
            "y": (torch.rand(batch_size, generator=g) < 0.3).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}


class NoisyInEval(Net):
    """B gets fresh noise in eval too (documented stochastic eval): rows differ by position, not by batch."""

    def forward(self, x, c):
        outputs = super().forward(x, c)
        outputs["B"] = outputs["B"] + 0.1 * torch.randn_like(outputs["B"])
        return outputs


def build_noisy_in_eval():
    return _seeded(lambda: _warmed(NoisyInEval()))
