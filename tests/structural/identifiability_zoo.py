"""Models for the identifiability tests: the reference CMDN with other modulators and encoders.

`WholeContextModulator` is the reference modulator before issue 17: one trunk computes M, B and T from
the whole of c, so (M, B, T) -> k(c)·(M, B, T) is free. `LeakyEncoderCMDN` lets the energy see c as
well as x, so the compensated shift (U_I + δ(c), B − M·δ(c)) is free.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MODELS = Path(__file__).resolve().parents[2] / "models"


def load_reference(filename: str = "cmdn.py"):
    path = MODELS / filename
    spec = importlib.util.spec_from_file_location(f"identifiability_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(MODELS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(MODELS))
    return module


cmdn = load_reference()
example_batch = cmdn.example_batch


class WholeContextModulator(nn.Module):
    def __init__(self, context_dim: int = 9, hidden: int = 16):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(context_dim, hidden), nn.ReLU())
        self.m_head, self.b_head, self.t_head = (nn.Linear(hidden, 1) for _ in range(3))

    def forward(self, c):
        features = self.trunk(c)
        M = F.softplus(self.m_head(features)).squeeze(-1) + 1e-3
        B = self.b_head(features).squeeze(-1)
        T = F.softplus(self.t_head(features)).squeeze(-1) + 0.05
        return M, B, T


def whole_context_cmdn():
    torch.manual_seed(0)
    model = cmdn.build_model()
    model.modulator = WholeContextModulator()
    return model


class LeakyEnergy(nn.Module):
    """U_I from z_I and the cell descriptor: the invariant energy depends on the cell line."""

    def __init__(self, z_dim: int = 16):
        super().__init__()
        self.net = nn.Linear(z_dim + 8, 1)

    def forward(self, z_I, descriptor):
        return self.net(torch.cat([z_I, descriptor], dim=1)).squeeze(-1)


class LeakyEncoderCMDN(nn.Module):
    def __init__(self):
        super().__init__()
        reference = cmdn.build_model()
        self.encoder, self.bottleneck, self.modulator = reference.encoder, reference.bottleneck, reference.modulator
        self.energy = LeakyEnergy()

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I, c[:, :-1])
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I,
                "M": M, "B": B, "T": T}
