"""Start-up settings for short CLI runs that import torch: the heap and torch's thread pool.

`import torch` leaves about a million objects that live until the process ends. Every full
collection after it, and the one at interpreter exit, walks all of them again: 0.3-0.4 s of a
2 s `alignguard check`. `gc.freeze()` moves everything alive at that moment into a generation
the collector never scans (the technique CPython documents for long-lived startup state). The
collector is paused during the import itself, whose own collections cost ~0.15 s of CPU and find
little garbage (`_collector_paused`).

A check runs thousands of small operators (batch-sized tensors, many forwards), each an OpenMP
parallel region. libgomp's default makes idle pool threads spin for ~300,000 iterations waiting
for the next region; on a machine whose cores are busy with other jobs, a spinning thread holds
the core the working one needs, and the check ran 7-30x slower in wall time (10x the CPU time) at
a load average of 7-10. `OMP_WAIT_POLICY=PASSIVE` makes waiting threads sleep instead. On an idle
machine sleeping is the expensive choice: every parallel region then wakes the pool with a syscall,
and the check of a ResNet-50-layout model (a few thousand small convolutions) took 6.5-7.1 s with
sleeping threads against 4.7-4.8 s with a short spin (`GOMP_SPINCOUNT=30000`, ~0.3 ms; libgomp's
default spins 10x longer), while on CMDN under 4 competing busy loops the short spin took 12 s
against passive's 7 s (benchmarks §10.13). So the policy follows the load when the worker starts
(`wait_policy`): a short spin when nothing but this command is ready to run (`others_runnable`: the
kernel's instantaneous count; with one busy loop beside it the spinning check of the ResNet-50 layout
took 20-27 s against passive's 8 s), sleeping threads otherwise. libgomp reads both variables once, when torch loads it,
so they are set before the import and never over a value the user chose (either variable set:
nothing changes).
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager

_frozen = False


def import_torch_and_freeze_heap(*, sleeping_threads: bool = False) -> None:
    """Import torch, then freeze the heap once per process (later calls only import).

    sleeping_threads: torch's OpenMP threads sleep between parallel regions instead of spinning
    (for commands made of many small operators: check, init, graph, mutate; not train, whose
    large steps keep the pool busy). No effect when torch is already imported.
    """
    global _frozen
    if sleeping_threads and "torch" not in sys.modules:
        os.environ.update(wait_policy(os.environ, others_runnable()))
    with _collector_paused():
        import torch  # noqa: F401  (imported for its side effect: the objects to freeze)

        if not _frozen:
            gc.freeze()
            _frozen = True


SHORT_SPIN = "30000"  # libgomp spins (~0.3 ms) before a waiting thread sleeps; its default is 300000


def wait_policy(environ, others: int) -> dict[str, str]:
    """The OpenMP variables to set for torch's pool (see the module docstring): {} when the user set
    either; a short spin when no other task is ready to run (`others`), sleeping threads otherwise."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    if others <= 0:
        return {"GOMP_SPINCOUNT": SHORT_SPIN}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


def others_runnable(samples: int = 5, interval: float = 0.002) -> int:
    """The fewest tasks ready to run, other than this process and its parent (the CLI parsing beside
    its worker), in a few readings of the kernel's instantaneous count (/proc/loadavg's `running`),
    `interval` seconds apart. Not the load average: it counts a benchmark's own previous runs, while one
    busy process beside a spinning pool already made a check 3x slower. The fewest, because a busy
    process is always ready and a kernel thread or an exiting process only now and then; apart, because
    readings taken back to back all saw the same passing task (a third runnable task in the first
    reading of a worker just forked, or a kernel thread): 2 of 6 ResNet-50-layout checks on an idle
    machine then chose sleeping threads, 5.1-5.4 s against 4.0 s. Large where it cannot be read, so
    threads sleep."""
    import time

    fewest = 1 << 20
    for reading in range(samples):
        if reading:
            time.sleep(interval)
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
            fewest = min(fewest, running - 1 - _parent_running())
        except (OSError, ValueError, IndexError):
            return 1 << 20
        if fewest <= 0:
            break  # nothing else is ready: no later reading can say less
    return fewest


def _parent_running() -> int:
    try:
        with open(f"/proc/{os.getppid()}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[0] == "R")
    except OSError:
        return 0


@contextmanager
def _collector_paused():
    """No garbage collection while importing: `import torch` allocates ~170,000 tracked objects, and the
    collections they trigger cost ~0.15 s of CPU (of ~1.5 s) to find ~7,000 objects of cyclic garbage
    (~1 MB), which gc.freeze then keeps for the life of this short process."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def warm_up_worker() -> dict[str, float]:
    """What a prestarted worker does while the CLI parses its arguments (alignguard/cli/app.py): torch
    with sleeping threads, and the use cases' modules, so that its job starts with the model file.
    Returns the seconds of each part, the rows of `check --timings`."""
    import time

    start = time.perf_counter()
    import_torch_and_freeze_heap(sleeping_threads=True)
    torch_imported = time.perf_counter()
    with _collector_paused():
        import alignguard.api  # noqa: F401
        import alignguard.checks.catalogue  # noqa: F401

        gc.freeze()  # networkx and the check modules join torch's objects out of the collector's reach
    return {"import torch": torch_imported - start, "import alignguard": time.perf_counter() - torch_imported}


def torch_for_the_worker() -> None:
    """Before `run_isolated` forks a worker for check, init or graph: import torch here, so the worker
    starts with it, unless a prestarted worker has imported it already (then this process never needs it)."""
    from alignguard.isolation import prestarted

    if not prestarted():
        import_torch_and_freeze_heap(sleeping_threads=True)
