"""Device, precision and determinism decisions, as plain functions so CPU-only tests exercise them.

`choose_device` and `choose_precision` take the hardware facts as arguments (CUDA present? bf16
supported?) instead of asking torch themselves; `runtime_facts()` asks torch once.
"""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

from alignguard.errors import UsageError


@dataclass(frozen=True)
class HardwareFacts:
    cuda_available: bool
    cuda_devices: int
    bf16_supported: bool


@dataclass(frozen=True)
class Precision:
    """Mixed-precision decision: autocast dtype (None = full float32) and whether a GradScaler is needed."""

    mode: str  # "off" | "bf16" | "fp16"
    use_scaler: bool
    reason: str

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def runtime_facts() -> HardwareFacts:
    import torch

    available = torch.cuda.is_available()
    return HardwareFacts(
        cuda_available=available,
        cuda_devices=torch.cuda.device_count() if available else 0,
        bf16_supported=bool(available and torch.cuda.is_bf16_supported()),
    )


def choose_device(requested: str, facts: HardwareFacts, local_rank: int = 0) -> str:
    """'auto' -> cuda:LOCAL_RANK when CUDA is present, else cpu; 'cuda' without CUDA is a usage error."""
    if requested not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown device '{requested}'", fix="use --device auto, cpu or cuda")
    if requested == "cpu" or (requested == "auto" and not facts.cuda_available):
        return "cpu"
    if not facts.cuda_available:
        raise UsageError(
            "--device cuda was requested but PyTorch sees no CUDA device",
            where=f"torch.cuda.is_available() is False (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})",
            fix="install a CUDA build of PyTorch and check the driver (nvidia-smi), or use --device cpu",
        )
    if local_rank >= facts.cuda_devices:
        raise UsageError(
            f"process LOCAL_RANK={local_rank} has no GPU: only {facts.cuda_devices} visible",
            fix="start at most one process per GPU (torchrun --nproc-per-node <= number of GPUs)",
        )
    return f"cuda:{local_rank}"


def choose_precision(requested: str, device: str, facts: HardwareFacts) -> Precision:
    """auto: bf16 autocast on CUDA when supported (no scaler), else fp16 + GradScaler; off on CPU."""
    on_cuda = device.startswith("cuda")
    if requested == "off":
        return Precision("off", False, "mixed precision disabled by configuration")
    if requested == "auto":
        if not on_cuda:
            return Precision("off", False, "CPU: float32 (autocast brings no speed-up for this model on CPU)")
        if facts.bf16_supported:
            return Precision("bf16", False, "CUDA with bf16 support: bf16 autocast, no loss scaling needed")
        return Precision("fp16", True, "CUDA without bf16: fp16 autocast with a GradScaler")
    if requested == "fp16":
        if not on_cuda:
            raise UsageError("amp fp16 needs CUDA", fix="use amp: off (or bf16) on CPU")
        return Precision("fp16", True, "fp16 autocast with a GradScaler (requested)")
    if requested == "bf16":
        if on_cuda and not facts.bf16_supported:
            raise UsageError("amp bf16 was requested but this GPU does not support bf16", fix="use amp: fp16 or auto")
        return Precision("bf16", False, "bf16 autocast (requested)")
    raise UsageError(f"unknown amp mode '{requested}'", fix="use auto, off, bf16 or fp16")


def autocast_context(precision: Precision, device: str):
    import torch

    if not precision.enabled:
        return nullcontext()
    dtype = torch.bfloat16 if precision.mode == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def default_workers(requested, device: str) -> int:
    """auto: 0 on CPU (the two cores compute; a worker would steal one), 4 on CUDA (hide host-side work)."""
    if requested != "auto":
        return int(requested)
    if not device.startswith("cuda"):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // 2))


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, ask for deterministic kernels.

    `warn_only=True`: an op without a deterministic implementation warns instead of killing the run
    (the run metadata records the mode either way). Deterministic mode also fills every new
    uninitialised tensor with NaN by default, a debugging aid that only matters to an op reading
    memory it never wrote (a bug); it cost 7 % of a CMDN training step on CPU (aten::fill_), so
    it is turned off.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True
