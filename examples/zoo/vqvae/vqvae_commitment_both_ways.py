"""Broken VQ-VAE: the commitment term forgets its stop-gradient on the codebook.

``beta * ||z_e - z_q||^2`` moves the codebook toward the encoder outputs as well: the two
terms no longer split the work (codebook vs encoder) the paper describes.
"""

import vqvae
from vqvae import build_model, example_batch  # noqa: F401


def loss_terms(model, batch, outputs, step):
    terms = vqvae.loss_terms(model, batch, outputs, step)
    terms["commitment"] = vqvae.BETA * (outputs["z_e"] - outputs["z_q"]).pow(2).sum(-1).mean()
    return terms
