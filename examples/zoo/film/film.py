"""FiLM: feature-wise linear modulation (Perez, Strub, de Vries, Dumoulin & Courville, AAAI 2018).

    (gamma, beta) = film_generator(c).chunk(2)     one Linear, its two halves
    h             = conv(x)                        features of the signal
    h'            = gamma * h + beta               per-channel affine modulation
    y             = head(pool(relu(h')))

gamma is initialised around 1 (the paper predicts Δgamma; here the generator's gamma half has a
+1 bias) so the network starts as an unmodulated CNN. Loss: cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS, LENGTH, COND_DIM, HIDDEN, N_CLASSES = 4, 24, 6, 16, 3


class FiLMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(CHANNELS, HIDDEN, 5, padding=2)
        self.film_generator = nn.Linear(COND_DIM, 2 * HIDDEN)
        with torch.no_grad():
            self.film_generator.bias[:HIDDEN] += 1.0  # gamma starts near 1
        self.head = nn.Linear(HIDDEN, N_CLASSES)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        gamma, beta = self.film_generator(c).chunk(2, dim=-1)
        h = self.conv(x)
        modulated = gamma.unsqueeze(-1) * h + beta.unsqueeze(-1)
        logits = self.head(F.relu(modulated).amax(dim=-1))
        return {"logits": logits, "h": h, "modulated": modulated, "gamma": gamma, "beta": beta}


def build_model() -> nn.Module:
    return FiLMNet()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, CHANNELS, LENGTH, generator=generator)
    c = torch.randn(batch_size, COND_DIM, generator=generator)
    # the question in c selects which channel of x the answer is read from
    y = (x.mean(-1) * c[:, :CHANNELS]).argmax(-1) % N_CLASSES
    return {"x": x, "c": c, "y": y}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    return {"ce": F.cross_entropy(outputs["logits"], batch["y"])}
