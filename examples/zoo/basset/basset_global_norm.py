"""Broken DeepSEA: the max-norm rescales the whole weight tensor by its global norm, not each kernel.

``weight.norm()`` instead of a per-kernel norm: a single kernel may far exceed MAX_NORM as long as
the tensor's total norm does not trip the bound... and once it trips, every kernel shrinks.
"""

import torch
from torch import nn
from torch.nn.utils import parametrize

import basset
from basset import DeepSEA, example_batch, loss_terms  # noqa: F401


class GlobalMaxNorm(nn.Module):
    def forward(self, weight):
        return weight * (basset.MAX_NORM * weight.shape[0] / weight.norm().clamp_min(1e-12)).clamp(max=1.0)


def build_model():
    model = DeepSEA()
    for conv in (model.conv1, model.conv2):
        parametrize.remove_parametrizations(conv, "weight")
        parametrize.register_parametrization(conv, "weight", GlobalMaxNorm())
    return model
