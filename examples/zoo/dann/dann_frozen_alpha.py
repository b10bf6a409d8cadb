"""Broken DANN: alpha is computed once at step 0 and never updated (alpha(0) = 0).

A schedule evaluated at import time instead of per step: the reversal is in place, but its
coefficient stays 0, so the features never receive the domain gradient at all.
"""

import dann
from dann import build_model, loss_terms  # noqa: F401

ALPHA = dann.alpha_schedule(0)


def example_batch(batch_size, seed, step=0):
    batch = dann.example_batch(batch_size, seed, step)
    batch["alpha"] = batch["alpha"] * 0 + ALPHA
    return batch
