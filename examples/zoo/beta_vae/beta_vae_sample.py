"""Broken beta-VAE: ``.sample()`` where ``.rsample()`` was needed.

``Normal.sample()`` draws under no_grad: z is noisy, the KL still trains mu and sigma toward the
prior, but the reconstruction loss sends no gradient to the encoder at all. The model looks
stochastic and trains (the decoder learns), so nothing crashes.
"""

from torch.distributions import Normal

import beta_vae
from beta_vae import BetaVAE, example_batch, loss_terms  # noqa: F401


class SampleVAE(BetaVAE):
    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        std = (0.5 * logvar).exp()
        posterior = Normal(mu, std)
        z = posterior.sample() if self.training else posterior.mean
        return {"x_hat": self.decoder(z), "z": z, "mu": mu, "std": std}


def build_model():
    return SampleVAE()
