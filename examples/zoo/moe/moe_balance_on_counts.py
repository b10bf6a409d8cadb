"""Broken MoE: the balance loss uses only the routed fractions f_i (argmax counts), N * sum f_i^2.

f_i comes from a top-k index, which has no gradient: the term is alive in the logs and dead in
training.
"""

import torch.nn.functional as F

import moe
from moe import build_model, example_batch  # noqa: F401


def loss_terms(model, batch, outputs, step):
    terms = moe.loss_terms(model, batch, outputs, step)
    routed = F.one_hot(outputs["chosen"][:, 0], moe.N_EXPERTS).float().mean(0)
    terms["balance"] = moe.BALANCE_WEIGHT * moe.N_EXPERTS * routed.pow(2).sum()
    return terms
