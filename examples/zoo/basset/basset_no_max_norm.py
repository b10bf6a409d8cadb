"""Broken DeepSEA: the max-norm constraint was dropped (plain convolutions).

Everything trains; kernels are free to grow, which the paper's regularisation was there to stop.
"""

from torch import nn

import basset
from basset import DeepSEA, example_batch, loss_terms  # noqa: F401


class Unconstrained(DeepSEA):
    def __init__(self, channels: int = 16):
        super().__init__(channels)
        self.conv1 = nn.Conv1d(4, channels, 9, padding=4)
        self.conv2 = nn.Conv1d(channels, channels, 5, padding=2)


def build_model():
    return Unconstrained()
