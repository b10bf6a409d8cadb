"""CMDN, the cell-line modulated decoupling network: the design, as the spec describes it.

    h          = encoder(x)                         φ_I: a CNN over the DNA window only
    z_I        = mu + exp(0.5·logvar) ⊙ ε           information bottleneck, ε ~ N(0, I)
    U_I        = energy(z_I)                        invariant binding energy, one scalar
    M          = concentration(descriptor)          M > 0, from the cell line only
    B          = shift(descriptor, accessibility)
    T          = sharpness(accessibility)           T ≥ t_min > 0, T(a_ref) = 1
    logit      = (M · U_I + B) / T                  P = sigmoid(logit)

The modulation is multiplicative, so unlike the legacy ``U_I − R_E`` head there is no
translation symmetry that depends on c: shifting U_I changes the prediction by M·δ/T. The formula's
own scaling symmetry (M, B, T) -> k·(M, B, T) is pinned by what each part sees (see Modulator).

Model-file contract (imported by path; ``_batches`` is a sibling module):
``build_model()``, ``example_batch(batch_size, seed)``, ``loss_terms(model, batch, outputs, step)``
and ``CURRICULUM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from _batches import CONTEXT_DIM
from _batches import example_batch as example_batch  # contract entry point, shared with legacy


@dataclass(frozen=True)
class BetaSchedule:
    """KL weight β(step): 0 up to ``start_step``, linear to ``beta_max`` at ``end_step``, then flat.

    β starts at 0 so the encoder first learns features worth compressing (seed: 课程学习, β from 0).
    """

    start_step: int = 200
    end_step: int = 1000
    beta_max: float = 1e-3

    def __call__(self, step: int) -> float:
        ramp = (step - self.start_step) / (self.end_step - self.start_step)
        return self.beta_max * min(max(ramp, 0.0), 1.0)


@dataclass(frozen=True)
class LossWeights:
    bce: float = 1.0
    rank: float = 1.0  # pairwise ranking surrogate for AUPR (the seed: optimise the ranking directly)
    decorr: float = 0.05  # corr(M, U_I)² penalty: M should scale affinity, not re-encode it


BETA_SCHEDULE = BetaSchedule()
LOSS_WEIGHTS = LossWeights()

# The design's three stages, in order: stage -> module path prefixes that train in it and the
# fraction of the epoch budget it gets. Stage 1 trains the invariant path while the modulator
# stays at its near-identity initialisation (M ≈ 1, B ≈ 0, T ≈ 1, so logit ≈ U_I). Stage 2 fits M
# and B; T joins in stage 3. While B is still ≈ 0 the positive rate rises with accessibility and
# the model misses it, and the quickest way to raise p at open loci, where most logits are
# negative, is a larger T (logit/T closer to 0): trained from the start, T(a) learned to *rise*
# with accessibility and stayed there (within-cell corr(T, T*) -0.91 on the benchmark). Once B
# carries the shift, T's gradient comes from the slope in U_I, which is what T means.
CURRICULUM = {
    "invariant": {"train": ["encoder", "bottleneck", "energy"], "fraction": 0.3},
    "modulator": {"train": ["modulator.concentration", "modulator.shift"], "fraction": 0.2},
    "joint": {"train": ["encoder", "bottleneck", "energy", "modulator"], "fraction": 0.5},
}


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class SequenceEncoder(nn.Module):
    """φ_I: DeepBind-style motif scanner over x only -> h (B, channels).

    One convolution whose kernel (11) covers a TF site, ReLU, then the maximum over positions
    ("is there a site anywhere?"). Adding mean pooling or early pooling plus a second layer made
    the planted motif take several times more steps to find on the example batches.
    """

    def __init__(self, channels: int = 64, kernel_size: int = 11):
        super().__init__()
        self.out_dim = channels
        self.scan = nn.Conv1d(4, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.scan(x)).amax(dim=-1)


class InformationBottleneck(nn.Module):
    """Gaussian bottleneck q(z_I | x) = N(mu, diag(exp(logvar))).

    Training mode draws fresh noise on every call: ``z_I = mu + exp(0.5·logvar) ⊙ ε``,
    ``ε = randn_like(std)``. Evaluation mode returns the mean, ``z_I = mu``: deterministic
    predictions and probes, and the standard choice for a Gaussian encoder (the KL already makes
    mu carry the information that survives the noise). Returns ``(z_I, mu, logvar)``.
    """

    def __init__(self, in_dim: int, z_dim: int = 16, init_logvar: float = -2.0):
        super().__init__()
        self.mu_head = nn.Linear(in_dim, z_dim)
        self.logvar_head = nn.Linear(in_dim, z_dim)
        # Start with moderate noise (σ ≈ 0.37) so stage 1 is not drowned; the KL then sets it.
        nn.init.constant_(self.logvar_head.bias, init_logvar)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu = self.mu_head(h)
        logvar = self.logvar_head(h)
        if self.training:
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(std)
            z_I = mu + std * eps
        else:
            z_I = mu
        return z_I, mu, logvar

    @staticmethod
    def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) ‖ N(0, I)), summed over z dimensions, averaged over the batch."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1).mean()


class EnergyHead(nn.Module):
    """g: z_I -> U_I, one invariant binding energy per example, shape (B,)."""

    def __init__(self, z_dim: int = 16, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z_I: torch.Tensor) -> torch.Tensor:
        return self.net(z_I).squeeze(-1)


def _mlp(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


def _small_head(hidden: int, bias: float) -> nn.Linear:
    """Output layer with small, non-zero weights (every parameter gets gradient at step 0) and a chosen bias."""
    head = nn.Linear(hidden, 1)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.constant_(head.bias, bias)
    return head


class ChromatinShift(nn.Module):
    """B(descriptor, accessibility) = b_access(a) + B_RANGE·tanh(b_cell(descriptor)/B_RANGE).

    The accessibility effect is one function shared by every cell line, learned from all of them;
    the cell line's own shift comes from its descriptor, which the benchmark (and any real dataset)
    offers for only a handful of training cell lines (8). A free function of the descriptor fitted to
    8 points extrapolates arbitrarily to an unseen cell line: trained as one MLP of (descriptor, a),
    B for a validation cell line of seed 2 came out 1.7 logit units above the training cells' mean
    (predicted positive rate 0.23 against 0.025), and replacing the descriptor by the training cells'
    mean for B alone raised validation pooled AUPR from 0.23 to 0.43 (seed 0: 0.61 to 0.67). So the
    shift separates the two and bounds the cell-specific part, as T_RANGE bounds T: a prior that a
    cell line moves the affinity by at most B_RANGE logit units beyond what its accessibility says.
    """

    B_RANGE = 1.0

    def __init__(self, descriptor_dim: int, hidden: int):
        super().__init__()
        self.access = nn.Sequential(_mlp(1, hidden), _small_head(hidden, 0.0))
        self.cell = nn.Sequential(_mlp(descriptor_dim, hidden), _small_head(hidden, 0.0))

    def forward(self, descriptor: torch.Tensor, access: torch.Tensor) -> torch.Tensor:
        own = self.cell(descriptor).squeeze(-1)
        if self.B_RANGE is not None:
            own = self.B_RANGE * torch.tanh(own / self.B_RANGE)
        return self.access(access).squeeze(-1) + own


class Modulator(nn.Module):
    """ψ(c) -> (M, B, T), each (B,). c = cell-line descriptor (all but the last column) + accessibility (last).

    (M·U_I + B)/T is unchanged by (M, B, T) -> k·(M, B, T), so what each part may see is the design:

    M = softplus(m(descriptor)) + m_min   TF concentration: a property of the cell line only.
    B = b_a(accessibility) + b_c(descriptor)  chromatin context shifts affinity (ChromatinShift:
                                          shared accessibility effect, bounded cell-line part).
    T = t_min + (1 - t_min)·exp(s(a) - s(a_ref)),  s = T_RANGE·tanh(g(a)/T_RANGE)
                                          sharpness from accessibility only, 1 at a_ref.

    A rescaling k would have to keep M a function of the descriptor and T one of the accessibility, so
    k can only be a constant, and T(a_ref) = 1 fixes that constant: T(a) is identifiable, and "open
    chromatin -> low T" can be read from it (docs/checks.md, identifiability). The descriptor part of
    the true T*(c, a) is a per-cell factor the same symmetry moves into M and B. The tanh bound keeps T in
    [t_min, e^(2·T_RANGE)] for any input; the floors keep M and T > 0 in float32.
    """

    ACCESS_REF = 0.5  # the reference accessibility where T is pinned to 1 (the benchmark's half-open locus)
    T_RANGE = 3.0  # |s| <= 3: T within a factor e^6 of T(a_ref)

    def __init__(self, context_dim: int = CONTEXT_DIM, hidden: int = 32,
                 t_min: float = 0.05, m_min: float = 1e-3):
        super().__init__()
        self.t_min, self.m_min = t_min, m_min
        self.concentration = nn.Sequential(_mlp(context_dim - 1, hidden),
                                           _small_head(hidden, _inverse_softplus(1.0 - m_min)))
        self.shift = ChromatinShift(context_dim - 1, hidden)
        self.sharpness = nn.Sequential(_mlp(1, hidden), _small_head(hidden, 0.0))
        # Near-identity start (M ≈ 1, B ≈ 0, T ≈ 1): stage 1 of the curriculum trains logit ≈ U_I.

    def _log_sharpness(self, access: torch.Tensor) -> torch.Tensor:
        return self.T_RANGE * torch.tanh(self.sharpness(access).squeeze(-1) / self.T_RANGE)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        descriptor, access = c[:, :-1], c[:, -1:]
        M = F.softplus(self.concentration(descriptor)).squeeze(-1) + self.m_min
        B = self.shift(descriptor, access)
        reference = torch.full_like(access[:1], self.ACCESS_REF)
        log_t = self._log_sharpness(access) - self._log_sharpness(reference)
        T = self.t_min + (1.0 - self.t_min) * torch.exp(log_t)
        return M, B, T


class CMDN(nn.Module):
    def __init__(self, context_dim: int = CONTEXT_DIM, z_dim: int = 16):
        super().__init__()
        self.encoder = SequenceEncoder()
        self.bottleneck = InformationBottleneck(in_dim=self.encoder.out_dim, z_dim=z_dim)
        self.energy = EnergyHead(z_dim=z_dim)
        self.modulator = Modulator(context_dim=context_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        # c never enters the encoder: z_I is swap-invariant by construction (same x, any c).
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I)
        M, B, T = self.modulator(c)
        logit = (M * U_I + B) / T
        return {"logit": logit, "z_I": z_I, "mu": mu, "logvar": logvar,
                "U_I": U_I, "M": M, "B": B, "T": T}


def build_model() -> CMDN:
    return CMDN()


def pairwise_rank_loss(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RankNet-style surrogate for AUPR: mean softplus(-(s_pos - s_neg)) over positive–negative pairs.

    A batch without both classes has no pairs; it then contributes an exact zero that stays on
    the graph (so the total still backpropagates).
    """
    positive, negative = logit[y > 0.5], logit[y <= 0.5]
    if positive.numel() == 0 or negative.numel() == 0:
        return logit.sum() * 0.0
    return F.softplus(negative[None, :] - positive[:, None]).mean()


def squared_correlation(a: torch.Tensor, b: torch.Tensor, variance_floor: float = 1e-2) -> torch.Tensor:
    """Squared correlation of a and b across the batch, with a floor added to each variance.

    Plain Pearson correlation has a gradient ∝ 1/std: while M(c) is still nearly constant (its
    near-identity start) that gradient explodes although there is nothing to decorrelate. The floor
    (std 0.1, for M and U_I of order 1) keeps it proportional to how much M actually varies.
    """
    a, b = a - a.mean(), b - b.mean()
    covariance = (a * b).mean()
    return covariance.pow(2) / ((a.pow(2).mean() + variance_floor) * (b.pow(2).mean() + variance_floor))


def loss_terms(model: CMDN, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor],
               step: int) -> dict[str, torch.Tensor]:
    """The weighted terms whose sum is the objective at ``step``.

    There is no ``swap`` term: swap invariance of z_I is structural here, because the encoder
    never sees c (the checker proves the c -> z_I path is absent). A model whose encoder did see
    cell-specific input would need an L_swap on mu over paired loci instead.
    """
    logit, y = outputs["logit"], batch["y"]
    return {
        "bce": LOSS_WEIGHTS.bce * F.binary_cross_entropy_with_logits(logit, y),
        "kl": BETA_SCHEDULE(step) * model.bottleneck.kl_divergence(outputs["mu"], outputs["logvar"]),
        "rank": LOSS_WEIGHTS.rank * pairwise_rank_loss(logit, y),
        "decorr": LOSS_WEIGHTS.decorr * squared_correlation(outputs["M"], outputs["U_I"]),
    }
