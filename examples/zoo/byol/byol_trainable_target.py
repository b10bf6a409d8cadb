"""Broken BYOL: the target is stop-gradient'ed in the loss, but its parameters stay trainable.

Nothing reaches them through the loss, yet they are handed to the optimiser: with weight decay
(AdamW) they shrink toward 0 every step, fighting the EMA update.
"""

from byol import BYOL, example_batch, loss_terms  # noqa: F401


class TrainableTargetBYOL(BYOL):
    def __init__(self):
        super().__init__()
        for parameter in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            parameter.requires_grad_(True)


def build_model():
    return TrainableTargetBYOL()
