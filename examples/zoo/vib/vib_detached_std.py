"""Broken Deep VIB: the std half of the encoder head is detached before sampling.

The bug: ``std.detach()`` (copied from a "stop the noise gradient" snippet). The forward pass
and the noise are unchanged, so accuracy looks fine, but the classification loss no longer
shapes sigma: only the KL does, which drives it to the prior. The bottleneck's trade-off is gone.
"""

import torch
import torch.nn.functional as F

from vib import VIB, example_batch, loss_terms  # noqa: F401  (contract entry points)


class DetachedStdVIB(VIB):
    def forward(self, x):
        mu, s = self.encoder(x).chunk(2, dim=-1)
        std = F.softplus(s - 5.0)
        z = self.reparameterize(mu, std.detach())
        return {"logits": self.decoder(z), "z": z, "mu": mu, "std": std}


def build_model():
    return DetachedStdVIB()
