"""What does measuring K loss shares cost, next to a plain training step and the naive way?

    python benchmarks/gradient_share_cost.py [--batch-size 64] [--repeats 7] [--device cpu|cuda]

Four ways to get gradients from the same model and batch, timed in alternating order so that
drift (thermal, other processes) hits each the same, and reported as medians:

* plain step — zero_grad, forward, loss_terms, backward of the summed loss (what training pays);
* shares     — one forward, one vmapped `autograd.grad(is_grads_batched=True)` over the K terms and
               the statistics (alignguard.gradients.term_gradients: what the checker pays; it falls
               back to the loop below where vmap cannot run the model's backward);
* shares loop — one forward, one `torch.autograd.grad(term, retain_graph=True)` per term;
* naive      — K separate forward + backward passes, one per term.

Runs on models/cmdn.py when it exists, otherwise on a comparable CNN defined here. Exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignguard.gradients import gradient_stats, term_gradients, trainable_parameters  # noqa: E402


class ComparableCNN(nn.Module):
    """A CMDN-sized stand-in: conv encoder over a 4×200 one-hot window, a context MLP, 3 loss terms."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(4, 64, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4),
                                     nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool1d(1),
                                     nn.Flatten(), nn.Linear(64, 16))
        self.energy = nn.Linear(16, 1)
        self.modulator = nn.Sequential(nn.Linear(9, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x, c):
        z = self.encoder(x)
        m, b = self.modulator(c).unbind(-1)
        return {"logit": F.softplus(m) * self.energy(z).squeeze(-1) + b, "z": z}


def _fallback():
    def example_batch(batch_size: int, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        x = F.one_hot(torch.randint(4, (batch_size, 200), generator=g), 4).transpose(1, 2).float()
        return {"x": x, "c": torch.randn(batch_size, 9, generator=g), "y": (torch.rand(batch_size, generator=g) < 0.2).float()}

    def loss_terms(model, batch, outputs, step):
        return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
                "l2": 1e-3 * outputs["z"].pow(2).mean(),
                "margin": F.softplus(-outputs["logit"]).mean()}

    return "comparable CNN (models/cmdn.py not found)", ComparableCNN(), example_batch, loss_terms


def _load():
    path = REPO / "models" / "cmdn.py"
    if not path.exists():
        return _fallback()
    from alignguard.modelfile.loader import load_model_file

    model_file = load_model_file(path)
    return "CMDN (models/cmdn.py)", model_file.build(), model_file.example_batch, model_file.loss_terms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--step", type=int, default=1000, help="training step passed to loss_terms")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    name, model, example_batch, loss_terms = _load()
    device = torch.device(args.device)
    model.to(device).train()
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in example_batch(args.batch_size, 0).items()}
    params = [p for _, p in trainable_parameters(model)]
    inputs = {k: batch[k] for k in ("x", "c")}

    def terms():
        return loss_terms(model, batch, model(**inputs), args.step)

    k = len(terms())

    def plain() -> None:
        model.zero_grad(set_to_none=True)
        sum(terms().values()).backward()

    def shares() -> None:
        gradient_stats(*_names_rows(term_gradients(terms(), params, batched=True)))

    def shares_loop() -> None:
        gradient_stats(*_names_rows(term_gradients(terms(), params, batched=False)))

    def naive() -> None:
        for i in range(k):
            term = list(terms().values())[i]
            if term.requires_grad:
                torch.autograd.grad(term, params, allow_unused=True)

    ways: dict[str, Callable[[], None]] = {"plain step": plain, "shares": shares, "shares loop": shares_loop,
                                           "naive": naive}
    times = _time(ways, args.repeats, device)
    params_count = sum(p.numel() for p in params)
    print(f"model: {name}; {params_count:,} trainable parameters; K = {k} loss terms; batch {args.batch_size}; "
          f"device {device}; median of {args.repeats} alternating repetitions")
    base, naive_time = statistics.median(times["plain step"]), statistics.median(times["naive"])
    print(f"{'method':<12} {'median ms':>10} {'÷ plain step':>13} {'÷ naive K passes':>17}")
    for method, samples in times.items():
        median = statistics.median(samples)
        print(f"{method:<12} {median * 1e3:>10.2f} {median / base:>13.2f} {median / naive_time:>17.2f}")
    return 0


def _names_rows(measured):
    keep = [i for i, n in enumerate(measured.names) if measured.status[n] != "nonfinite"]
    return [measured.names[i] for i in keep], measured.grads[keep]


def _time(ways: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for way in ways.values():  # warm-up: allocator, kernels, lazy init
        way()
    sync()
    times: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    for repeat in range(repeats):
        for name in order[repeat % len(order):] + order[:repeat % len(order)]:  # rotate the order
            sync()
            start = time.perf_counter()
            ways[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    raise SystemExit(main())
