"""Tiny models for loss.descent: the loss dict's terms with honest, reversed and custom gradients.

`loss_terms` is honest (BCE, a KL through a noisy bottleneck, and a BatchNorm whose running
statistics a train-mode forward changes); every other entry point breaks one term's gradient.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Reverse(torch.autograd.Function):
    """Identity forward; backward multiplies by `factor` (-1: a gradient-reversal layer)."""

    @staticmethod
    def forward(ctx, value, factor):
        ctx.factor = factor
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad):
        return ctx.factor * grad, None


class RoundStraightThrough(torch.autograd.Function):
    """round() forward, identity backward: a straight-through estimator."""

    @staticmethod
    def forward(ctx, value):
        return value.round()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh())
        self.mu_head, self.logvar_head = nn.Linear(8, 3), nn.Linear(8, 3)
        self.energy = nn.Linear(3, 1)
        self.modulator = nn.Linear(2, 2)
        self.adversary = nn.Linear(3, 2)  # predicts c from z through a gradient reversal (the legacy L_domain)

    def forward(self, x, c):
        h = self.encoder(x)
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        # Large noise on purpose: without identical re-seeding the finite difference would be noise.
        z = mu + torch.exp(0.5 * logvar + 1.0) * torch.randn_like(mu) if self.training else mu
        m, b = self.modulator(c).unbind(-1)
        logit = F.softplus(m) * self.energy(z).squeeze(-1) + b
        self.aux_loss = logvar.pow(2).mean()  # an auxiliary loss left on the module (MoE load balancing does this)
        return {"logit": logit, "z_I": z, "mu": mu, "logvar": logvar}


def build_model():
    torch.manual_seed(0)
    return Net()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 6, generator=g), "c": torch.randn(batch_size, 2, generator=g),
            "y": (torch.arange(batch_size) % 3 == 0).float()}


def loss_terms(model, batch, outputs, step):
    mu, logvar = outputs["mu"], outputs["logvar"]
    return {
        "bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
        "kl": 0.1 * 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean(),
    }


def reversed_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["kl"] = Reverse.apply(terms["kl"], -1.0)  # value kept, gradient negated
    return terms


def domain_terms(model, batch, outputs, step):
    """The legacy domain loss: the adversary learns, the encoder receives the reversed gradient."""
    terms = loss_terms(model, batch, outputs, step)
    code = Reverse.apply(outputs["z_I"], -1.0)
    terms["domain"] = F.mse_loss(model.adversary(code), batch["c"])
    return terms


def scaled_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["bce"] = Reverse.apply(terms["bce"], 3.0)  # a custom backward that overstates the slope 3x
    return terms


def straight_through_terms(model, batch, outputs, step):
    terms = loss_terms(model, batch, outputs, step)
    terms["quantised"] = RoundStraightThrough.apply(4 * outputs["mu"]).pow(2).mean() * 0.01
    return terms


def decay_terms(model, batch, outputs, step):
    """An L2 over the weights: a term that reads no output of forward."""
    terms = loss_terms(model, batch, outputs, step)
    terms["l2"] = 1e-2 * sum(p.pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight"))
    return terms


def reversed_decay_terms(model, batch, outputs, step):
    terms = decay_terms(model, batch, outputs, step)
    terms["l2"] = Reverse.apply(terms["l2"], -1.0)
    return terms


def aux_terms(model, batch, outputs, step):
    """A term read from the module, where forward left it: it reads no output, yet depends on forward."""
    terms = loss_terms(model, batch, outputs, step)
    terms["aux"] = 0.1 * model.aux_loss
    return terms
