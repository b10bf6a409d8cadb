"""Purpose-built tiny models for the numerical probes; specs pick one with `entry_points.build_model`.

`build_model` is the design (noise in train, mean in eval, c only in the modulator,
logit = (M·U_I + B)/T with M, T > 0). Each other builder breaks exactly one property.
"""

import torch
import torch.nn.functional as F
from torch import nn

X_DIM, C_DIM, Z_DIM = 6, 3, 4


class Bottleneck(nn.Module):
    def __init__(self, in_dim, noise_in_train=True, noise_in_eval=False):
        super().__init__()
        self.mu_head, self.logvar_head = nn.Linear(in_dim, Z_DIM), nn.Linear(in_dim, Z_DIM)
        self.noise_in_train, self.noise_in_eval = noise_in_train, noise_in_eval

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        noisy = self.noise_in_train if self.training else self.noise_in_eval
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if noisy else mu
        return z, mu, logvar


class Energy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(Z_DIM, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, z):
        return self.net(z).squeeze(-1)


class Modulator(nn.Module):
    """(M, B, T); `positive=False` leaves M linear, `exp_temperature` uses an unclamped exp."""

    def __init__(self, positive=True, exp_temperature=False):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(C_DIM, 8), nn.Tanh())
        self.heads = nn.Linear(8, 3)
        self.raw = nn.Linear(C_DIM, 3)  # a direct linear path, so extreme contexts reach the heads
        self.positive, self.exp_temperature = positive, exp_temperature

    def forward(self, c):
        m, b, t = (self.heads(self.trunk(c)) + self.raw(c)).unbind(-1)
        M = F.softplus(m) + 1e-3 if self.positive else m
        T = torch.exp(5 * t) if self.exp_temperature else F.softplus(t) + 0.05
        return M, b, T


class Design(nn.Module):
    def __init__(self, leak=False, **bottleneck):
        super().__init__()
        self.leak = leak
        self.encoder = nn.Sequential(nn.Linear(X_DIM + (C_DIM if leak else 0), 8), nn.ReLU())
        self.bottleneck = Bottleneck(8, **bottleneck)
        self.energy = Energy()
        self.modulator = Modulator()

    def forward(self, x, c):
        h = self.encoder(torch.cat([x, c], -1) if self.leak else x)
        z_I, mu, logvar = self.bottleneck(h)
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I,
                "M": M, "B": B, "T": T}


class Resistance(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(C_DIM, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, c):
        return self.net(c).squeeze(-1)


class Additive(nn.Module):
    """The legacy head: logit = (U_I - R_E) / T with one global temperature."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(X_DIM, 8), nn.ReLU())
        self.bottleneck = Bottleneck(8)
        self.energy = Energy()
        self.resistance = Resistance()
        self.log_temperature = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, c):
        z_I, mu, _ = self.bottleneck(self.encoder(x))
        U_I, R_E = self.energy(z_I), self.resistance(c)
        T = self.log_temperature.exp()
        return {"logit": (U_I - R_E) / T, "z_I": z_I, "U_I": U_I, "R_E": R_E, "T": T}


class InlineEnergy(Design):
    """U_I computed in forward itself from z_I: no submodule returns it, so it cannot be hooked."""

    def forward(self, x, c):
        z_I, mu, _ = self.bottleneck(self.encoder(x))
        U_I = z_I.sum(-1) * 0.5
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "U_I": U_I, "M": M, "B": B, "T": T}


class GainedEncoder(nn.Module):
    """Takes x only, but scales its features by a gain the model sets on it beforehand."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(X_DIM, 8), nn.ReLU())
        self.gain = torch.ones(())

    def forward(self, x):
        return self.body(x) * self.gain


class StateFilm(Design):
    """FiLM through state: the modulator runs first and leaves a gain from c on the encoder, which reads it
    (no argument of the encoder call shows c; c reaches z_I)."""

    def __init__(self):
        super().__init__()
        self.encoder = GainedEncoder()

    def forward(self, x, c):
        M, B, T = self.modulator(c)
        self.encoder.gain = T.unsqueeze(-1)
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "mu": mu, "logvar": logvar, "U_I": U_I,
                "M": M, "B": B, "T": T}


def _seeded(factory):
    torch.manual_seed(0)
    return factory()


def build_model():
    return _seeded(Design)


def build_leaky():
    return _seeded(lambda: Design(leak=True))


def build_no_noise():
    return _seeded(lambda: Design(noise_in_train=False))


def build_noisy_eval():
    return _seeded(lambda: Design(noise_in_eval=True))


def build_additive():
    return _seeded(Additive)


def build_inline_energy():
    return _seeded(InlineEnergy)


def build_state_film():
    return _seeded(StateFilm)


def build_signed_modulator():
    def factory():
        model = Design()
        model.modulator = Modulator(positive=False, exp_temperature=True)
        return model
    return _seeded(factory)


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, X_DIM, generator=g), "c": torch.randn(batch_size, C_DIM, generator=g),
            "y": (torch.rand(batch_size, generator=g) < 0.3).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
