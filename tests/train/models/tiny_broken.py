"""The tiny CMDN with the legacy mistake: the modulator is built but never called (gate must refuse).

Everything else is the trainer tests' tiny CMDN, imported as a sibling module.
"""

import torch
from tiny_cmdn import TinyCMDN, example_batch, loss_terms  # noqa: F401  (the model-file contract)


class TinyBroken(TinyCMDN):
    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I).squeeze(-1)
        M, B, T = torch.ones_like(U_I), c[:, 0], torch.ones_like(U_I)  # self.modulator is never called
        logit = (M * U_I + B) / T
        return {"logit": logit, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I, "M": M, "B": B, "T": T}


def build_model():
    return TinyBroken()
