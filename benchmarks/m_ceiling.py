"""How many training cell lines the built-in benchmark needs before M(descriptor) can be recovered at all.

For each count of training cell lines and each seed, `alignguard.data.ceiling.m_ceiling` fits the
exact log M* (in CMDN's gauge) of the training cell lines by ridge regression on the descriptor and
correlates the fit with M* over the 256-cell unseen panel. No examples are generated and no model
is trained: this is a property of the benchmark, a ceiling for any model's panel corr(M, M*).
Prints, per count, the ceiling at the strength chosen by leave-one-out over the training cell lines
(the decision figure) and the range over the strength grid, then the smallest count whose ceiling
reaches the target in every seed (or that none does).

    python benchmarks/m_ceiling.py [--counts 8 12 16 24] [--seeds 0 1 2] [--target 0.8]

Runs in a few seconds. Exits 0.
"""

from __future__ import annotations

import argparse

from alignguard.data.ceiling import STRENGTHS, m_ceiling
from alignguard.data.config import SynthConfig


def smallest_count(table: dict[int, list[float]], target: float) -> int | None:
    """The smallest count whose ceiling is >= target in every seed (None: no count does)."""
    return next((count for count in sorted(table) if min(table[count]) >= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[8, 12, 16, 24])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.8)
    args = parser.parse_args(argv)

    chosen: dict[int, list[float]] = {}
    best: dict[int, list[float]] = {}
    grid = ", ".join(f"{s:g}" for s in STRENGTHS)
    print(f"ceiling of corr(M, M*) over the unseen panel: ridge fit (strength by leave-one-out from {grid}) "
          "to the exact training-cell M* in CMDN's gauge")
    print(f"{'cells_train':>11} | " + " | ".join(f"seed {s}: LOO (strength) [grid range]" for s in args.seeds)
          + " | min over seeds")
    for count in args.counts:
        results = [m_ceiling(SynthConfig(seed=seed, cells_train=count)) for seed in args.seeds]
        chosen[count] = [r.chosen for r in results]
        best[count] = [max(r.by_strength.values()) for r in results]
        cells = [f"{r.chosen:.3f} ({r.chosen_strength:g}) [{min(r.by_strength.values()):.3f}-"
                 f"{max(r.by_strength.values()):.3f}]" for r in results]
        print(f"{count:>11} | " + " | ".join(f"{c:<34}" for c in cells) + f" | {min(chosen[count]):.3f}")
    pick = smallest_count(chosen, args.target)
    print(f"smallest count with the LOO ceiling >= {args.target} in every seed: "
          + (str(pick) if pick is not None else f"none of {args.counts}"))
    pick_best = smallest_count(best, args.target)
    print(f"(with the best strength of the grid, an oracle choice: "
          + (str(pick_best) if pick_best is not None else f"none of {args.counts}") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
