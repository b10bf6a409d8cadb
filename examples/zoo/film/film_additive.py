"""Broken FiLM: conditioning by addition only (h + beta): gamma is computed but never applied.

A common "simplification" (concatenate-or-add conditioning). The generator's gamma half still
gets built and returned, but the design's multiplicative modulation is gone.
"""

import torch.nn.functional as F

from film import FiLMNet, example_batch, loss_terms  # noqa: F401


class AdditiveFiLM(FiLMNet):
    def forward(self, x, c):
        gamma, beta = self.film_generator(c).chunk(2, dim=-1)
        h = self.conv(x)
        modulated = h + beta.unsqueeze(-1)
        logits = self.head(F.relu(modulated).amax(dim=-1))
        return {"logits": logits, "h": h, "modulated": modulated, "gamma": gamma, "beta": beta}


def build_model():
    return AdditiveFiLM()
