"""Broken VQ-VAE: the decoder reads z_q directly, without the straight-through estimator.

argmin has no gradient, so the reconstruction loss trains the decoder and the codebook but
never the encoder; only the commitment term moves it. Reconstructions improve a little, then stall.
"""

from vqvae import VQVAE, example_batch, loss_terms  # noqa: F401


class NoStraightThroughVQVAE(VQVAE):
    def forward(self, x):
        z_e = self.encoder(x)
        z_q = self.codebook(z_e)
        return {"x_hat": self.decoder(z_q), "z_e": z_e, "z_q": z_q, "z_st": z_q}


def build_model():
    return NoStraightThroughVQVAE()
