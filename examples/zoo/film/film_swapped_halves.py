"""Broken FiLM: the halves are unpacked in the wrong order, (beta, gamma) = chunk(2).

The network still trains, but the half initialised to +1 (meant for gamma) is now added, and
the shift half multiplies: the unmodulated-start initialisation is inverted (features start
multiplied by ~0).
"""

import torch.nn.functional as F

from film import FiLMNet, example_batch, loss_terms  # noqa: F401


class SwappedFiLM(FiLMNet):
    def forward(self, x, c):
        beta, gamma = self.film_generator(c).chunk(2, dim=-1)
        h = self.conv(x)
        modulated = gamma.unsqueeze(-1) * h + beta.unsqueeze(-1)
        logits = self.head(F.relu(modulated).amax(dim=-1))
        return {"logits": logits, "h": h, "modulated": modulated, "gamma": gamma, "beta": beta}


def build_model():
    return SwappedFiLM()
