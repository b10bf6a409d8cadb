"""The planted ground truth: background DNA, motif energy U*(x), the hidden map descriptor -> (M*, B*, T*),
per-(locus, cell) accessibility and the true binding probability.

Every quantity the probability depends on is either a function of the window x or observed in the
context vector c (descriptor and accessibility), so p_true = P(y = 1 | x, c) exactly and its AUPR is
the Bayes ceiling. The formulas are written out in docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .config import SynthConfig
from .motifs import Motif, best_score, load_motif, sample_instances

def expit(values: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * values))


ENERGY_GAIN = 2.5  # U* = 2.5 S(x) / sd(S): a typical planted site sits ~4-5 logit units above background
HIDDEN_UNITS = 16
REFERENCE_DESCRIPTORS = 4096  # population used to standardise the hidden map's outputs
# Fixed scales of the hidden map (multiplied by SynthConfig.cell_effect / access_effect).
LOG_M_SCALE = 0.3  # M* = exp(0.3 s_M): one s.d. of s_M changes the TF "concentration" x1.35
RATE_SCALE = 0.5  # one s.d. of s_B moves a cell line's positive rate by 0.5 in log-odds
B_ACCESS_SCALE = 1.5  # per unit of accessibility logit
LOG_T_CELL_SCALE = 0.3
LOG_T_ACCESS_SCALE = 1.0  # T* is e^0.5 higher at a=0 (closed), e^-0.5 lower at a=1 (open), vs a=0.5
ACCESS_CELL_SCALE = 0.5
ACCESS_NOISE = 1.0


def base_probabilities(gc: float) -> np.ndarray:
    """(A, C, G, T) probabilities at a GC content."""
    return np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])


def markov_transitions(gc: float, cpg_depletion: float) -> np.ndarray:
    """Order-1 transition matrix: i.i.d. at `gc`, with C->G scaled by `cpg_depletion` (rows renormalised)."""
    transitions = np.tile(base_probabilities(gc), (4, 1))
    transitions[1, 2] *= cpg_depletion
    return transitions / transitions.sum(axis=1, keepdims=True)


def sample_background(config: SynthConfig, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, L) uint8 background codes, i.i.d. or order-1 Markov, vectorised over loci."""
    probs = base_probabilities(config.gc)
    uniforms = rng.random((count, config.window), dtype=np.float32)
    if config.background == "iid":
        edges = np.cumsum(probs)[:3].astype(np.float32)
        return sum((uniforms > edge).astype(np.uint8) for edge in edges)  # inverse CDF by 3 compares
    cumulative = np.cumsum(markov_transitions(config.gc, config.cpg_depletion), axis=1)[:, :3]
    codes = np.empty((count, config.window), dtype=np.uint8)
    codes[:, 0] = np.searchsorted(np.cumsum(probs)[:3], uniforms[:, 0], side="right")
    for position in range(1, config.window):  # one vectorised step per position
        rows = cumulative[codes[:, position - 1]]
        codes[:, position] = (uniforms[:, position, None] > rows).sum(axis=1)
    return codes


def plant(codes: np.ndarray, motif: Motif, rate: float, rng: np.random.Generator) -> None:
    """Overwrite one motif instance (a fresh draw from the PWM) at a random position and strand."""
    chosen = np.flatnonzero(rng.random(len(codes)) < rate)
    instances = sample_instances(motif, len(chosen), rng)
    minus = rng.random(len(chosen)) < 0.5
    instances[minus] = 3 - instances[minus, ::-1]  # reverse complement (no N in instances)
    starts = rng.integers(0, codes.shape[1] - motif.length + 1, size=len(chosen))
    codes[chosen[:, None], starts[:, None] + np.arange(motif.length)] = instances


@dataclass(frozen=True)
class Energy:
    """U*(x) = g S(x)/sd(S) + w g max(S_co(x), 0)/sd(S_co+), g = ENERGY_GAIN; log-odds 0 is U's neutral point."""

    motif: Motif
    cofactor: Motif | None
    log_odds: np.ndarray
    cofactor_log_odds: np.ndarray | None
    weight: float
    scale: float = 1.0
    cofactor_scale: float = 1.0

    @classmethod
    def build(cls, config: SynthConfig) -> Energy:
        background = base_probabilities(config.gc)
        motif = load_motif(config.motif)
        cofactor = load_motif(config.cofactor) if config.cofactor else None
        return cls(
            motif,
            cofactor,
            motif.log_odds(background),
            cofactor.log_odds(background) if cofactor else None,
            config.cofactor_weight,
        )

    def raw_scores(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        main = best_score(codes, self.log_odds)
        extra = best_score(codes, self.cofactor_log_odds) if self.cofactor is not None else None
        return main, extra

    def calibrated(self, codes: np.ndarray) -> tuple[Energy, np.ndarray]:
        """Fix the scales from the raw scores of a reference sample; also return its energies."""
        main, extra = self.raw_scores(codes)
        scale = (float(main.std()) or 1.0) / ENERGY_GAIN
        extra_scale = (float(np.maximum(extra, 0).std()) or 1.0) / ENERGY_GAIN if extra is not None else 1.0
        energy = replace(self, scale=scale, cofactor_scale=extra_scale)
        return energy, energy._combine(main, extra)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return self._combine(*self.raw_scores(codes))

    def _combine(self, main: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        energy = main / self.scale
        if extra is not None:
            energy = energy + self.weight * np.maximum(extra, 0) / self.cofactor_scale
        return energy.astype(np.float32)


@dataclass(frozen=True)
class HiddenMap:
    """A fixed random map descriptor d -> standardised scores s_M, s_B, s_T, s_A (one per output).

    h(d) = tanh(W d / sqrt(D)); s_k(d) = (u_k . h(d) - mean_k) / sd_k with mean/sd over a
    reference population d ~ N(0, I), so unseen test descriptors land on the same scale.
    """

    weights: np.ndarray  # (H, D)
    readouts: np.ndarray  # (4, H): rows M, B, T, A
    mean: np.ndarray  # (4,)
    std: np.ndarray  # (4,)

    @classmethod
    def draw(cls, dim: int, rng: np.random.Generator) -> HiddenMap:
        weights = rng.normal(0.0, 1.5, size=(HIDDEN_UNITS, dim))
        readouts = rng.normal(size=(4, HIDDEN_UNITS))
        readouts /= np.linalg.norm(readouts, axis=1, keepdims=True)
        reference = cls._raw(weights, readouts, rng.normal(size=(REFERENCE_DESCRIPTORS, dim)))
        return cls(weights, readouts, reference.mean(axis=0), reference.std(axis=0))

    @staticmethod
    def _raw(weights: np.ndarray, readouts: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        hidden = np.tanh(descriptors @ weights.T / np.sqrt(weights.shape[1]))
        return hidden @ readouts.T

    def scores(self, descriptors: np.ndarray) -> np.ndarray:
        """(n_cells, 4) standardised scores, columns M, B, T, A."""
        return (self._raw(self.weights, self.readouts, descriptors) - self.mean) / self.std


@dataclass(frozen=True)
class CellTruth:
    """Per cell line: the descriptor-dependent parts of M*, B*, T* and of accessibility."""

    m: np.ndarray  # M*(c) > 0 (1 under the additive mechanism)
    log_t_cell: np.ndarray  # descriptor part of log T* (0 under the additive mechanism)
    access_shift: np.ndarray  # descriptor part of the accessibility logit
    rate_score: np.ndarray  # s_B(c): moves the cell line's target positive rate
    baseline: np.ndarray | None = None  # beta0(c), calibrated by `calibrate_baselines`

    def subset(self, cells: np.ndarray) -> CellTruth:
        baseline = None if self.baseline is None else self.baseline[cells]
        return CellTruth(
            self.m[cells], self.log_t_cell[cells], self.access_shift[cells], self.rate_score[cells], baseline
        )

    @classmethod
    def from_descriptors(cls, hidden: HiddenMap, descriptors: np.ndarray, config: SynthConfig) -> CellTruth:
        s = hidden.scores(descriptors)
        e = config.cell_effect
        multiplicative = config.mechanism == "multiplicative"
        return cls(
            m=np.exp(LOG_M_SCALE * e * s[:, 0]) if multiplicative else np.ones(len(s)),
            log_t_cell=LOG_T_CELL_SCALE * e * s[:, 2] if multiplicative else np.zeros(len(s)),
            access_shift=ACCESS_CELL_SCALE * e * s[:, 3],
            rate_score=RATE_SCALE * e * s[:, 1],
        )


def accessibility_logits(openness: np.ndarray, truth: CellTruth, noise: np.ndarray) -> np.ndarray:
    """alpha[l, c] = rho_l + shift(c) + eta[l, c]; accessibility a = sigmoid(alpha) in (0, 1)."""
    return openness[:, None] + truth.access_shift[None, :] + ACCESS_NOISE * noise


def temperature(access_logit: np.ndarray, truth: CellTruth, config: SynthConfig) -> np.ndarray:
    """T*(c, a) = exp(t(c) - k_T (a - 1/2)): open chromatin (a -> 1) gives a lower T, a sharper response."""
    if config.mechanism == "additive":
        return np.ones_like(access_logit)
    access = expit(access_logit)
    return np.exp(truth.log_t_cell[None, :] - LOG_T_ACCESS_SCALE * config.access_effect * (access - 0.5))


def binding_logits(
    energy: np.ndarray, access_logit: np.ndarray, truth: CellTruth, config: SynthConfig, baseline=None
) -> np.ndarray:
    """(n_loci, n_cells) logits of the true binding probability.

    multiplicative: (M*(c) U*(x) + B*(c, a)) / T*(c, a),  B*(c, a) = beta0(c) + k_B alpha
    additive:       (U*(x) - R*(c, a)) / T0,               R*(c, a) = -(beta0(c) + k_B alpha), T0 = 1
    """
    beta0 = truth.baseline if baseline is None else baseline
    b = beta0[None, :] + B_ACCESS_SCALE * config.access_effect * access_logit
    return (truth.m[None, :] * energy[:, None] + b) / temperature(access_logit, truth, config)


def target_rates(truth: CellTruth, train_cells: np.ndarray, config: SynthConfig) -> np.ndarray:
    """pi(c) = sigmoid(c0 + s_B(c)), c0 chosen so the training cells' mean pi(c) is the target rate."""
    low, high = -30.0, 30.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        rate = expit(middle + truth.rate_score[train_cells]).mean()
        low, high = (middle, high) if rate < config.positive_rate else (low, middle)
    return expit(0.5 * (low + high) + truth.rate_score)


def calibrate_baselines(
    energy: np.ndarray, access_logit: np.ndarray, truth: CellTruth, config: SynthConfig, targets: np.ndarray
) -> np.ndarray:
    """beta0(c) per cell line such that its mean p_true over the reference loci equals pi(c).

    Bisection for all cell lines at once; the mean probability increases in beta0 because T* > 0.
    """
    low = np.full(len(targets), -300.0)
    high = np.full(len(targets), 300.0)
    for _ in range(60):  # 600 / 2**60: far below float32 resolution
        middle = 0.5 * (low + high)
        rate = expit(binding_logits(energy, access_logit, truth, config, middle)).mean(axis=0)
        below = rate < targets
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return 0.5 * (low + high)
