"""loss.descent's perturbation bookkeeping (`checks/gradients/perturb.py`'s `Moved`) on a large model,
milliseconds per call, side by side with another checkout's, in one process.

    python benchmarks/perturb_cost.py [--model /tmp/lg/resnet50.py] [--terms 2] [--repeats 5]
                                      [--compare OTHER_CHECKOUT]

`Moved` is built from the model's trainable parameters with `--terms` random gradient terms and
random weights per (parameter, term), as loss.descent's shared direction gives them; per step
length loss.descent calls `along` once, `hold` twice (θ + δ₊, then θ + δ₋) and `restore` once;
times are per step length, medians over the repeats and the two step lengths (ε and ε/10), with a
forward of the model after each `hold` as in the check (caches and allocator as a check leaves them). With --compare, both
implementations run on the same tensors, alternated, and the script checks they agree: `along`'s
dots and span to 1e-12 relative, and the values `hold` writes bit for bit. Run it with
OMP_NUM_THREADS=1 (in-process timings on a shared machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _perturb_module(checkout: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, checkout / "alignguard/checks/gradients/perturb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(path: str):
    """(the model, a forward on its example batch in train mode, as loss.descent runs between calls)."""
    spec = importlib.util.spec_from_file_location("perturb_cost_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model().train()
    batch = module.example_batch(4, 0)
    inputs = [batch[name] for name in ("x", "c") if name in batch]

    def forward() -> None:
        torch.manual_seed(0)
        model(*inputs)
    return model, forward


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/lg/resnet50.py",
                        help="a model file with build_model() and example_batch(size, seed) giving x (and c)")
    parser.add_argument("--terms", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout of alignguard")
    args = parser.parse_args()

    torch.manual_seed(0)
    model, forward = _model(args.model)
    params = [p for p in model.parameters() if p.requires_grad]
    origin = [p.detach().clone() for p in params]
    terms = [[torch.randn_like(p) for p in params] for _ in range(args.terms)]
    weights = torch.rand(len(params), args.terms, dtype=torch.float64)
    norm = sum(float(p.double().pow(2).sum()) for p in terms[0]) ** 0.5
    arms = {"this": _perturb_module(ROOT, "perturb_this")}
    if args.compare is not None:
        arms["compare"] = _perturb_module(args.compare.resolve(), "perturb_compare")
    moved = {arm: module.Moved(params, origin, terms, weights) for arm, module in arms.items()}
    print(f"{args.model}: {sum(p.numel() for p in params) / 1e6:.1f} M parameters in {len(params)} tensors, "
          f"{args.terms} terms, torch threads {torch.get_num_threads()}")

    times = {arm: {"along": [], "hold ×2": [], "restore": []} for arm in arms}
    measured, written = {}, {}
    for repeat in range(args.repeats):
        for divisor in (1, 10):
            step = 1e-5 / divisor / norm
            for arm in (list(arms) if repeat % 2 == 0 else list(arms)[::-1]):
                m = moved[arm]
                times[arm]["along"].append(_timed(lambda: measured.__setitem__((arm, divisor), m.along(step, -step))))
                times[arm]["hold ×2"].append(0.0)
                for sign in (1.0, -1.0):
                    times[arm]["hold ×2"][-1] += _timed(lambda: m.hold(sign * step))
                    if repeat == 0:
                        written[(arm, divisor, sign)] = torch.cat([p.detach().reshape(-1) for p in params])
                    forward()  # the caches and the allocator as a check leaves them between calls
                times[arm]["restore"].append(_timed(m.restore))
                assert all(torch.equal(p, o) for p, o in zip(params, origin)), f"{arm}: restore is not θ"

    print(f"{'ms per call (median)':22s}" + "".join(f"{arm:>12s}" for arm in arms)
          + ("       ratio" if len(arms) > 1 else ""))
    for call in ("along", "hold ×2", "restore"):
        medians = [statistics.median(times[arm][call]) for arm in arms]
        ratio = f"{medians[0] / medians[1]:12.2f}" if len(medians) > 1 else ""
        print(f"{call:22s}" + "".join(f"{m:12.1f}" for m in medians) + ratio)
    per_step = [statistics.median(a + h + r for a, h, r in zip(*times[arm].values())) for arm in arms]
    print(f"{'per step length':22s}" + "".join(f"{m:12.1f}" for m in per_step)
          + (f"{per_step[0] / per_step[1]:12.2f}" if len(per_step) > 1 else ""))

    if len(arms) > 1:
        worst = 0.0
        for divisor in (1, 10):
            (dots_a, span_a), (dots_b, span_b) = measured[("this", divisor)], measured[("compare", divisor)]
            for a, b in zip([*dots_a, span_a], [*dots_b, span_b]):
                worst = max(worst, abs(a - b) / max(abs(b), 1e-300))
            for sign in (1.0, -1.0):
                if not torch.equal(written[("this", divisor, sign)], written[("compare", divisor, sign)]):
                    print(f"DIFFERENT values held at step {sign:+g}·ε/{divisor}")
                    return 1
        print(f"along: worst relative difference {worst:.2e}; values held: bit-identical")
        if worst > 1e-12:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
