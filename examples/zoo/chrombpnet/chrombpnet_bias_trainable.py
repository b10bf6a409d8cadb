"""Broken ChromBPNet: the bias model is loaded but not frozen.

``requires_grad_(False)`` was lost when loading the pre-trained bias weights; the accessibility
model and the bias model now share the explanation of the signal, so the bias model drifts
toward the TF footprints it was meant to exclude.
"""

from chrombpnet import ChromBPNet, example_batch, loss_terms  # noqa: F401


def build_model():
    model = ChromBPNet()
    model.bias_model.requires_grad_(True)
    return model
