"""Broken beta-VAE: the KL is computed from detached posterior parameters.

Written to "log the KL" and then reused as the loss: ``Normal(mu.detach(), std.detach())``. The
value is right, the gradient is zero, so beta does nothing.
"""

import torch
from torch.distributions import Normal, kl_divergence

import beta_vae
from beta_vae import build_model, example_batch  # noqa: F401


def loss_terms(model, batch, outputs, step):
    terms = beta_vae.loss_terms(model, batch, outputs, step)
    posterior = Normal(outputs["mu"].detach(), outputs["std"].detach())
    prior = Normal(torch.zeros_like(outputs["mu"]), torch.ones_like(outputs["std"]))
    terms["kl"] = beta_vae.BETA * kl_divergence(posterior, prior).sum(-1).mean()
    return terms
