"""Broken MoE: the gate's softmax runs over the batch (dim=0) instead of over the experts.

Each example's gate then depends on the rest of its batch, and the "probabilities" of one example
no longer sum to 1.
"""

import torch.nn.functional as F

from moe import MixtureOfExperts, example_batch, loss_terms  # noqa: F401


class BatchGate(MixtureOfExperts):
    def route(self, x):
        return F.softmax(self.gate(x), dim=0)


def build_model():
    return BatchGate()
