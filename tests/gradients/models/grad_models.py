"""Purpose-built tiny models for the gradient checks, one model file with several entry points.

Specs pick a variant through `entry_points` (build_model / loss_terms): the good model, and
one loss_terms per failure the checks must tell apart.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu_head = nn.Linear(8, 3)
        self.logvar_head = nn.Linear(8, 3)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return z, mu, logvar


class Net(nn.Module):
    def __init__(self, unused: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.bottleneck = Bottleneck()
        self.energy = nn.Linear(3, 1)
        self.modulator = nn.Linear(2, 2)
        self.decoder = nn.Linear(3, 6)
        if unused:
            self.unused = nn.Linear(3, 1)  # built, never called

    def forward(self, x, c):
        z, mu, logvar = self.bottleneck(self.encoder(x))
        U = self.energy(z).squeeze(-1)
        m, b = self.modulator(c).unbind(-1)
        M = F.softplus(m)
        return {"logit": M * U + b, "z_I": z, "mu": mu, "logvar": logvar, "U_I": U,
                "recon": self.decoder(z)}


def build_model():
    torch.manual_seed(0)
    return Net()


def build_with_unused():
    torch.manual_seed(0)
    return Net(unused=True)


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 6, generator=g)
    y = (torch.arange(batch_size) % 3 == 0).float()
    return {"x": x, "c": torch.randn(batch_size, 2, generator=g), "y": y}


def beta(step):
    return 0.0 if step < 10 else 0.1


def kl(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()


def loss_terms(model, batch, outputs, step):
    """The aligned objective: BCE + β-weighted KL + reconstruction."""
    return {
        "bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "kl": beta(step) * kl(outputs["mu"], outputs["logvar"]),
        "recon": 0.1 * F.mse_loss(outputs["recon"], batch["x"]),
    }


def detached_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["kl"] = beta(step) * kl(outputs["mu"], outputs["logvar"]).detach()  # logged, never trained
    return terms


def item_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["kl"] = torch.tensor(kl(outputs["mu"], outputs["logvar"]).item())  # a fresh tensor
    return terms


def zero_gradient_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    # A non-zero value whose gradient is identically zero: the weight sits inside the term.
    terms["kl"] = 1.0 + 0.0 * kl(outputs["mu"], outputs["logvar"])
    return terms


def nan_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["kl"] = torch.log(outputs["logvar"].sum() - 1e6)  # log of a negative number: NaN
    return terms


def opposite_terms(model, batch, outputs, step):
    """The seed's orth/domain pair: two terms whose gradients are exactly opposite."""
    energy = outputs["U_I"].pow(2).mean()
    return {
        "bce": 0.01 * F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "orth": energy,
        "domain": -0.98 * energy,
    }


def decoder_kl_terms(model, batch, outputs, step):
    """A 'KL' computed on the decoder's view of a detached code: it only shapes the decoder."""
    recon = model.decoder(outputs["z_I"].detach())
    mu, logvar = recon[:, :3], recon[:, 3:]
    terms = loss_terms(model, batch, outputs, step)
    terms["kl"] = beta(step) * kl(mu, logvar)
    return terms


def extra_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["orth"] = 0.1 * (outputs["z_I"] * outputs["mu"]).mean().pow(2)
    return terms


def scalar_shape_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["bce"] = F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"], reduction="none")
    return terms


def raising_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logits"], batch["y"])}  # misspelled key
