"""Broken BYOL: the target branch is computed with gradient and its parameters left trainable.

``copy.deepcopy`` keeps requires_grad=True and the ``no_grad``/``detach`` were lost in a
refactor: the loss now pulls the target toward the online prediction as well (the collapse BYOL's
stop-gradient exists to prevent), and the optimiser updates the "EMA" network directly.
"""

from byol import BYOL, example_batch, regression_loss  # noqa: F401


class TrainedTargetBYOL(BYOL):
    def __init__(self):
        super().__init__()
        for parameter in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            parameter.requires_grad_(True)

    def target(self, view):
        return self.target_projector(self.target_encoder(view))


def build_model():
    return TrainedTargetBYOL()


def loss_terms(model, batch, outputs, step):
    return {"byol": regression_loss(outputs["p1"], outputs["t2"]) + regression_loss(outputs["p2"], outputs["t1"])}
