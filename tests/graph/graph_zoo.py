"""Small models that exercise each capture trap (DESIGN.md §3, "known traps")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch(n: int = 4, sign: float = 1.0) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"x": sign * (torch.rand(n, 6, generator=g) + 0.1)}


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        h = self.lin(x)
        h.mul_(2)
        h.clamp_(min=-5.0)
        h.add_(1)
        return h


class SetItem(nn.Module):
    def forward(self, x):
        h = x * 2
        h[:, 0] = x[:, 1]  # fx cannot assign into a Proxy: the eager capture records the mutation
        return h + 1


class Baked(nn.Module):
    def forward(self, x):
        return x * torch.randn(4, 6)  # a concrete shape: fx executes this once, at trace time


class BakedConstant(nn.Module):
    def forward(self, x):
        return x * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # created at trace time: a baked constant


class Spellings(nn.Module):
    """The same products and exponentials written every way Python and torch allow."""

    def forward(self, x):
        a = x * x
        b = torch.mul(x, x)
        c = x.mul(x)
        d = 2 * x
        e = x.exp() + torch.exp(x)
        f = torch.sub(x, 1) - (1 - x) + x.sub(1)
        g = x / 2 + torch.div(x, 2) + x.div(2) + 2 / x
        return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g}


class Selections(nn.Module):
    def forward(self, x):
        first, second = x.chunk(2, -1)
        top = x.max(-1)[0]
        n = x.shape[0]
        noise = torch.randn_like(first)
        return {"first": first, "second": second, "top": top, "scaled": second * n, "noise": noise}


class DimIf(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        if x.dim() > 2:
            x = x.flatten(1)
        return self.lin(x).exp()


class LenOfTensor(nn.Module):
    def forward(self, x):
        return x * len(x)


class Rsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = nn.Linear(6, 3)
        self.log_sigma = nn.Linear(6, 3)

    def forward(self, x):
        return torch.distributions.Normal(self.mu(x), self.log_sigma(x).exp()).rsample()


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class WithGRL(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(6, 4)
        self.domain = nn.Linear(4, 2)

    def forward(self, x):
        z = self.features(x)
        return {"z": z, "domain": self.domain(GradReverse.apply(z, 1.0))}


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent: each batch sees one branch
            return {"out": x * 2}
        return {"out": x - 1}


class Dropouts(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(x) + F.dropout(x, 0.5, training=self.training)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(6, 6), nn.Tanh())

    def forward(self, x):
        return self.block(self.block(x))


class OptionalArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x, scale: float = 2.0, return_all: bool = False):
        y = self.lin(x) * scale
        if return_all:  # a Python flag, not data: traced at its default
            return {"y": y, "x": x}
        return {"y": y}
