"""Broken Deep VIB: the sample is never drawn (z = mu in training too).

The bug: ``reparameterize`` returns mu unconditionally (a debug shortcut left in). The KL is
still computed, so the loss curve looks like a VIB's, but z = f(x) is deterministic and
compresses nothing.
"""

from vib import VIB, example_batch, loss_terms  # noqa: F401


class NoNoiseVIB(VIB):
    def reparameterize(self, mu, std):
        return mu


def build_model():
    return NoNoiseVIB()
