"""alignguard.memory: the memory a phase freed goes back to the kernel before loss.descent's peak."""

from __future__ import annotations

import subprocess
import sys

import pytest

FREED_THEN_RELEASED = """
import ctypes
from alignguard.memory import return_freed_memory

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
blocks = [libc.malloc(64 << 10) for _ in range(1600)]  # 100 MiB of heap blocks (below the mmap threshold)
for b in blocks:
    ctypes.memset(b, 1, 64 << 10)
keep = libc.malloc(64 << 10)  # a live block above them: the heap cannot shrink from its top
for b in blocks:
    libc.free(b)
freed = resident_mib()
return_freed_memory()
print(freed - resident_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, /proc")
def test_freed_heap_memory_goes_back_to_the_kernel():
    out = subprocess.run([sys.executable, "-c", FREED_THEN_RELEASED], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 80, out.stdout  # of the 100 MiB freed under a live block


def test_the_gradient_measurement_releases_the_first_graph_before_its_caller_reads_the_gradients(monkeypatch):
    """measure_steps returns the first batch's freed graph to the kernel right before on_first_batch (loss.descent's
    phase, the check's peak), and only when there is such a caller."""
    import torch

    import alignguard.gradients.measure as measure

    calls = []
    monkeypatch.setattr(measure, "return_freed_memory", lambda: calls.append("released"))
    model = torch.nn.Linear(3, 1)
    batches = [{"x": torch.randn(4, 3)}, {"x": torch.randn(4, 3)}]
    terms = lambda batch, out, step: {"mse": out.pow(2).mean()}  # noqa: E731
    measure.measure_steps(model, batches, lambda b: model(b["x"]), terms, [0], seeds=[0, 1],
                          on_first_batch=lambda first, seen: calls.append("caller"))
    assert calls == ["released", "caller"]
    calls.clear()
    measure.measure_steps(model, batches, lambda b: model(b["x"]), terms, [0], seeds=[0, 1])
    assert calls == []
