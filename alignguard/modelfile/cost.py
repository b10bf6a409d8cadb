"""What one forward of the model costs, counted rather than timed (`alignguard init` sizes its
measurement batch from it, so the starter it writes does not depend on the machine or its load).

The count uses torch's FLOP formulas (`torch.utils.flop_counter.flop_registry`, what
`FlopCounterMode` counts with) over one eval-mode forward of a small probe batch: the floating-point
operations of matrix products, convolutions and attention (elementwise operators are not counted;
they are a small part of any model large enough for its cost to matter). The count depends only on
the shapes the forward meets, never on time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import flop_registry
from torch.utils._python_dispatch import TorchDispatchMode

if TYPE_CHECKING:
    from alignguard.modelfile.loader import ModelFile

PROBE_ROWS = 2  # the smallest batch a spec allows (entry_points.batch_size >= 2)


def forward_flops_per_row(model_file: "ModelFile", model, seed: int = 0, step: int = 0) -> float | None:
    """FLOPs of one forward, per row of the batch, on a PROBE_ROWS-row example batch; None when the
    probe cannot run (the caller then keeps its default, and meets the model's error, if any, itself).

    The model is left as it was: the forward runs in eval mode (no batch-norm statistics move) without
    autograd, under a forked RNG, and every module's train/eval flag is restored."""
    modes = {module: module.training for module in model.modules()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            batch = model_file.batch(model, PROBE_ROWS, seed, step)
            model.eval()
            with FlopCount() as counter:
                model_file.forward(model, batch, on="the cost probe (eval mode)")
        flops = counter.flops
    except Exception:  # a model that cannot run 2 rows (or an operator the counter cannot see): the default
        return None
    finally:
        for module, training in modes.items():
            module.training = training
    return flops / PROBE_ROWS if flops > 0 else None


class FlopCount(TorchDispatchMode):
    """The FLOPs of the operators run inside it, by torch's formulas. Not `FlopCounterMode` itself: its
    dispatch handler, like every TorchDispatchMode's by default, imports torch._dynamo on its first
    operator (1.5 s idle, 5 s under load: more than the forwards it would save), and its module tracker
    hooks every module; this counts totals only, and compiles nothing, so it needs neither."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # keeps __torch_dispatch__ unwrapped: no torch._dynamo import

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func.overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out
