"""Broken Deep VIB: noise is still drawn in eval mode (no ``self.training`` branch).

The design (and this spec) evaluates at the mean; this variant samples at test time too, so
predictions change from call to call.
"""

import torch

from vib import VIB, example_batch, loss_terms  # noqa: F401


class NoisyEvalVIB(VIB):
    def reparameterize(self, mu, std):
        return mu + std * torch.randn_like(std)


def build_model():
    return NoisyEvalVIB()
