"""Everything a check may read, computed lazily and once: the model, batches, the graph.

Expensive artefacts (the captured graph, gradient measurements, probe runs) are memoised with
`context.memo(key, factory)`, so check families share work without knowing about each other,
and a run that needs no graph never captures one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from alignguard.modelfile.loader import ModelFile
from alignguard.spec.model import Spec


@dataclass
class CheckContext:
    spec: Spec
    model_file: ModelFile
    model: Any  # torch.nn.Module, built once
    timings: dict[str, float] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict)
    _open_phases: list[float] = field(default_factory=list)  # child time of each open phase

    def memo(self, key: str, factory: Callable[[], Any]) -> Any:
        if key not in self._memo:
            with self.timed(key):
                self._memo[key] = factory()
        return self._memo[key]

    def memoised(self, key: str) -> Any:
        """What `memo(key, ...)` made, or None: nothing is computed."""
        return self._memo.get(key)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time a phase exclusively: a phase nested in another (the capture a check triggers) is
        charged to itself only, so the phases add up to the total."""
        start = time.perf_counter()
        self._open_phases.append(0.0)
        try:
            yield
        finally:
            children = self._open_phases.pop()
            elapsed = time.perf_counter() - start
            self.timings[phase] = self.timings.get(phase, 0.0) + elapsed - children
            if self._open_phases:
                self._open_phases[-1] += elapsed

    def batch(self, index: int = 0, batch_size: int | None = None, step: int | None = None) -> dict:
        """The index-th example batch (seed = spec seed + index), memoised. When `example_batch`
        takes the training step, the batch is drawn at `step` (default: `entry_points.step`, the
        step graph capture and probes run at); otherwise every step shares one batch."""
        size = batch_size or self.spec.entry_points.batch_size
        seed = self.spec.entry_points.seed + index
        if not self.model_file.step_dependent:
            return self.memo(f"batch:{size}:{seed}", lambda: self.model_file.batch(self.model, size, seed))
        at = self.spec.entry_points.step if step is None else step
        return self.memo(f"batch:{size}:{seed}:step{at}", lambda: self.model_file.batch(self.model, size, seed, at))

    @property
    def captured_graph(self):
        """The graph if some check captured it, else None (a run that needed none captures none)."""
        return self._memo.get("capture")

    @property
    def graph(self):
        from alignguard.graph.capture import capture_graph

        capture = self.spec.capture
        batches = lambda: [self.batch(i) for i in range(capture.batches)]  # noqa: E731
        return self.memo("capture", lambda: capture_graph(self.model, batches(), method=capture.method))
