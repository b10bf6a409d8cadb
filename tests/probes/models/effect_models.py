"""Models for component.effect: a frozen target branch (correct, bypassed, held as buffers), a
zero-initialised head, an index symbol, a parameter-free component. `build_*` picks the idiom."""

from __future__ import annotations

import torch
from torch import nn


class Frozen(nn.Module):
    """An EMA-style target: requires_grad=False and called under no_grad."""

    def __init__(self, bypassed: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6))
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.bypassed = bypassed

    def forward(self, x):
        with torch.no_grad():
            return x if self.bypassed else self.net(x)


class BufferTarget(nn.Module):
    """A frozen copy whose weights are persistent buffers (no parameters at all)."""

    def __init__(self, bypassed: bool = False):
        super().__init__()
        self.register_buffer("weight", torch.randn(6, 6) / 3)
        self.bypassed = bypassed

    def forward(self, x):
        return x if self.bypassed else x @ self.weight.T


class TwoBranch(nn.Module):
    def __init__(self, target: nn.Module, zero_head: bool = False):
        super().__init__()
        self.online = nn.Linear(6, 6)
        self.target = target
        self.head = nn.Linear(6, 3)
        if zero_head:  # ControlNet / adaLN-Zero style: the head starts at exactly 0
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.act = nn.ReLU()

    def forward(self, x):
        p = self.online(x)
        t = self.target(x)
        return {"p": p, "t": t, "y": self.head(self.act(p) + t)}


class Indexed(nn.Module):
    """A VQ-style index: the symbol is the argmin over a codebook of the encoder's output."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 4)
        self.codebook = nn.Parameter(torch.randn(5, 4))

    def forward(self, x):
        z = self.encoder(x)
        index = torch.cdist(z, self.codebook).argmin(-1)
        return {"index": index, "z_q": self.codebook[index]}


class Squashed(nn.Module):
    """A parameter-free component (a Tanh module) whose output is used, or discarded."""

    def __init__(self, discard: bool = False):
        super().__init__()
        self.encoder = nn.Linear(6, 6)
        self.squash = nn.Tanh()
        self.head = nn.Linear(6, 2)
        self.discard = discard

    def forward(self, x):
        h = self.encoder(x)
        s = self.squash(h)
        return {"y": self.head(h if self.discard else s)}


def build_model():
    return TwoBranch(Frozen())


def build_bypassed():
    return TwoBranch(Frozen(bypassed=True))


def build_buffers():
    return TwoBranch(BufferTarget())


def build_buffers_bypassed():
    return TwoBranch(BufferTarget(bypassed=True))


def build_zero_head():
    return TwoBranch(Frozen(), zero_head=True)


def build_indexed():
    return Indexed()


def build_squashed():
    return Squashed()


def build_squashed_discarded():
    return Squashed(discard=True)


def example_batch(batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 6, generator=generator)}


def loss_terms(model, batch, outputs, step):
    value = next(v for v in outputs.values() if v.is_floating_point())
    return {"fit": value.pow(2).mean()}


class Auxiliary(nn.Module):
    """An auxiliary head whose output forward returns in train mode only."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 6)
        self.aux = nn.Linear(6, 2)

    def forward(self, x):
        h = self.encoder(x)
        out = {"h": h}
        if self.training:
            out["a"] = self.aux(h)
        return out


def build_auxiliary():
    return Auxiliary()


class Sampled(nn.Module):
    """A VAE-style code: the scale head reaches z only in train mode (eval returns the mean)."""

    def __init__(self):
        super().__init__()
        self.mu_head = nn.Linear(6, 3)
        self.scale_head = nn.Linear(6, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        mu, std = self.mu_head(x), nn.functional.softplus(self.scale_head(x))
        z = mu + std * torch.randn_like(std) if self.training else mu
        return {"z": self.bn(z)}


def build_sampled():
    return Sampled()
