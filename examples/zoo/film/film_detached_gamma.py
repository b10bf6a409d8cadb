"""Broken FiLM: gamma is detached ("keep the scale stable"), so the generator's gamma half never trains.

The forward values are identical to the correct model's; only the gamma half of
``film_generator``'s weight stops receiving gradient. The beta half still trains, so the
generator as a module looks alive.
"""

import torch.nn.functional as F

from film import FiLMNet, example_batch, loss_terms  # noqa: F401


class DetachedGammaFiLM(FiLMNet):
    def forward(self, x, c):
        gamma, beta = self.film_generator(c).chunk(2, dim=-1)
        gamma = gamma.detach()
        h = self.conv(x)
        modulated = gamma.unsqueeze(-1) * h + beta.unsqueeze(-1)
        logits = self.head(F.relu(modulated).amax(dim=-1))
        return {"logits": logits, "h": h, "modulated": modulated, "gamma": gamma, "beta": beta}


def build_model():
    return DetachedGammaFiLM()
