"""Broken MoE: the load-balancing loss is computed from detached gate probabilities.

It was written for logging ("expert load") and then added to the loss: its value is right, its
gradient is zero, so nothing stops the gate from collapsing onto one expert.
"""

import moe
from moe import build_model, example_batch  # noqa: F401


def loss_terms(model, batch, outputs, step):
    terms = moe.loss_terms(model, batch, outputs, step)
    terms["balance"] = moe.BALANCE_WEIGHT * moe.balance_loss(outputs["gates"].detach(), outputs["chosen"])
    return terms
