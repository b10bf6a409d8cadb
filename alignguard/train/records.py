"""The metrics log: one JSON object per line (kind "step", "epoch", "alarm", "event"), mirrored to
TensorBoard when the `tensorboard` package is installed. Only rank 0 owns a writer."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, tuples lists, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record (a torn last line from a killed run is ignored)."""
    records = []
    if not Path(path).is_file():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_after(path: Path, step: int, epoch: int) -> None:
    """On resume, drop what the killed run logged after its checkpoint (it will be logged again)."""
    kept = [r for r in read_records(path)
            if r.get("step", 0) <= step and (r.get("kind") != "epoch" or r.get("epoch", 0) <= epoch)]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


class MetricsLog:
    def __init__(self, path: Path, tensorboard_dir: Path | None):
        self.path = Path(path)
        self.handle = open(self.path, "a", encoding="utf-8")
        self.board, self.tensorboard_problem = _tensorboard(tensorboard_dir) if tensorboard_dir else (None, None)

    @property
    def tensorboard_enabled(self) -> bool:
        return self.board is not None

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(clean(record)) + "\n")
        self.handle.flush()
        if self.board is not None and record.get("kind") in ("step", "epoch"):
            step = int(record.get("step", 0))
            for tag, value in _scalars(record):
                self.board.add_scalar(tag, value, step)

    def close(self) -> None:
        self.handle.close()
        if self.board is not None:
            self.board.close()


def _tensorboard(directory: Path):
    """(writer, None), or (None, why not): tensorboard is optional, and its absence is said aloud."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # ImportError, or a broken install
        return None, f"{type(exc).__name__}: {exc}"
    return SummaryWriter(log_dir=str(directory)), None


def _scalars(record: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, float]]:
    kind = record.get("kind", "")
    for key, value in record.items():
        if key in ("kind", "step", "epoch", "time") and not prefix:
            continue
        tag = f"{prefix}{key}" if prefix else f"{kind}/{key}"
        if isinstance(value, dict):
            yield from _scalars(value, tag + "/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield tag, float(value)
