"""Seed torch's random number generators cheaply: the checks re-seed before every probe forward.

`torch.manual_seed` also seeds every accelerator backend; one that is not initialised (CUDA, XPU
and MTIA on a CPU-only machine) queues the seed for later together with a formatted stack trace
of the caller, which costs ~0.5 ms per call and reads each caller's source file once. A check
seeds about a hundred times. Seeding the CPU generator, and the accelerators only when one is
initialised (a model on a GPU initialises it), gives the same draws for every tensor the run makes.
"""

from __future__ import annotations


def manual_seed(seed: int) -> None:
    """torch.manual_seed(seed), without queueing seeds for accelerators nothing has initialised."""
    import torch

    if _accelerator_initialised(torch):
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(int(seed))


def _accelerator_initialised(torch) -> bool:
    for name in ("cuda", "xpu", "mtia"):
        backend = getattr(torch, name, None)
        is_initialized = getattr(backend, "is_initialized", None)
        if is_initialized is not None and is_initialized():
            return True
    return False
