"""Broken beta-VAE: the KL weight is read from a config key that is never set, so beta = 0.

The term is still returned (and logged as 0.0), so the run looks like a beta-VAE; it is a plain
autoencoder with noise.
"""

import torch.nn.functional as F  # noqa: F401

import beta_vae
from beta_vae import build_model, example_batch  # noqa: F401

CONFIG = {"kl_weight": 0.0}  # the sweep meant to set beta=4 wrote "beta" instead


def loss_terms(model, batch, outputs, step):
    terms = beta_vae.loss_terms(model, batch, outputs, step)
    terms["kl"] = terms["kl"] / beta_vae.BETA * CONFIG["kl_weight"]
    return terms
