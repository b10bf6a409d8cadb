"""Broken VQ-VAE: the straight-through expression is written the wrong way round.

``z_q + (z_e - z_q).detach()`` has the same forward value but routes the decoder's gradient to the
codebook entry instead of the encoder: the encoder again learns only from the commitment term.
"""

from vqvae import VQVAE, example_batch, loss_terms  # noqa: F401


class ReversedStraightThroughVQVAE(VQVAE):
    def forward(self, x):
        z_e = self.encoder(x)
        z_q = self.codebook(z_e)
        z_st = z_q + (z_e - z_q).detach()
        return {"x_hat": self.decoder(z_st), "z_e": z_e, "z_q": z_q, "z_st": z_st}


def build_model():
    return ReversedStraightThroughVQVAE()
