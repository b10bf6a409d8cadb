"""The gate in front of training, and the run directory's provenance records.

Nothing is written to the run directory until the check has passed (or been overridden out loud):
a refused run leaves no trace but the report on the console.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from alignguard.errors import CheckpointError, UsageError
from alignguard.train.records import clean

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
REPORT_FILE = "check_report.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lock"
OVERRIDE_BANNER = ("TRAINING DESPITE A FAILED DESIGN CHECK (--skip-check-i-know). The model does not implement "
                   "its spec; whatever this run learns is not evidence for the design. This override is "
                   "recorded in run.json.")


@dataclass
class GateOutcome:
    report: Any  # alignguard.results.Report
    exit_code: int
    overridden: bool

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def report_as_json(report) -> dict[str, Any]:
    return clean({
        "spec_name": report.spec_name,
        "spec_path": report.spec_path,
        "model_path": report.model_path,
        "capture": report.capture,
        "capture_note": report.capture_note,
        "counts": report.counts(),
        "exit_code": int(report.exit_code()),
        "timings": report.timings,
        "results": [
            {"check_id": r.check_id, "element": r.element, "status": r.status.value, "severity": r.severity,
             "expected": r.expected, "found": r.found, "where": str(r.where), "fix": r.fix, "note": r.note,
             "details": _plain(r.details)}
            for r in report.results
        ],
    })


def _plain(value: Any) -> Any:
    """details may hold tuples as keys or odd objects: keep what JSON can say, stringify the rest."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def versions() -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("alignguard", "torch", "numpy", "scikit-learn", "pydantic", "typer", "rich", "matplotlib",
                    "safetensors", "tensorboard"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["cuda"] = torch.version.cuda
    found["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if torch.cuda.is_available():
        found["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return found


def prepare_new_run(run_dir: Path) -> bool:
    """A new run needs an absent or empty directory (an existing run is continued with --resume).

    Returns whether this call created the directory (a run that fails before training removes it).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory '{run_dir}' is a file", fix="choose another --out (a directory)")
    leftovers = [p for p in run_dir.iterdir() if p.name != LOCK_FILE] if run_dir.exists() else []
    if leftovers and not (leftovers == [run_dir / CHECKPOINTS] and not any((run_dir / CHECKPOINTS).iterdir())):
        raise UsageError(
            f"run directory '{run_dir}' already exists and is not empty",
            fix="pass --resume to continue that run (it needs checkpoints/last.pt), or choose another --out "
            "(or delete the directory if it holds a run that never reached its first checkpoint)",
        )
    created = not run_dir.exists()
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    return created


def discard_new_run(run_dir: Path, created: bool) -> None:
    """A new run that stopped before its first step: leave the directory as it was found."""
    for child in list(run_dir.iterdir()) if run_dir.is_dir() else []:
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink(missing_ok=True)
    link = run_dir.parent / "latest"
    if link.is_symlink() and os.readlink(link) == run_dir.name:
        link.unlink(missing_ok=True)
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass


class RunLock:
    """An exclusive lock on a run directory for as long as one trainer writes to it.

    flock, not a pid file: the kernel drops it when the process ends however it ends (SIGKILL
    included), so a crashed run never blocks its own resume.
    """

    def __init__(self, run_dir: Path):
        import fcntl

        self.path = Path(run_dir) / LOCK_FILE
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.descriptor, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self.descriptor)
            raise UsageError(f"another `alignguard train` (process {holder}) is writing to run directory "
                             f"'{run_dir}'", where=str(self.path),
                             fix="wait for it to finish (or stop it) before resuming, or train into another --out"
                             ) from None
        os.ftruncate(self.descriptor, 0)
        os.pwrite(self.descriptor, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)  # closing drops the flock; the file stays (unlinking would race)
            self.descriptor = -1


def has_checkpoint(run_dir: Path) -> bool:
    folder = Path(run_dir) / CHECKPOINTS
    return folder.is_dir() and any(folder.glob("*.pt"))


def record_provenance(run_dir: Path, *, spec_path: Path, model_path: Path, gate: GateOutcome,
                      config_json: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """run.json, config.json, check_report.json and copies of the spec and model file."""
    shutil.copyfile(spec_path, run_dir / "spec.yaml")
    shutil.copyfile(model_path, run_dir / "model.py")
    _write_json(run_dir / REPORT_FILE, report_as_json(gate.report))
    _write_json(run_dir / CONFIG_FILE, config_json)
    run = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "spec": {"path": str(Path(spec_path).resolve()), "sha256": sha256_of(spec_path)},
        "model": {"path": str(Path(model_path).resolve()), "sha256": sha256_of(model_path)},
        "gate": {"passed": gate.passed, "exit_code": gate.exit_code, "overridden": gate.overridden,
                 "counts": gate.report.counts(), "report": REPORT_FILE,
                 **({"banner": OVERRIDE_BANNER} if gate.overridden else {})},
        "versions": versions(),
        **extra,
        "resumes": [],
    }
    _write_json(run_dir / RUN_FILE, run)
    return run


def point_latest(run_dir: Path) -> None:
    """`<parent>/latest` -> this run (so `alignguard evaluate runs/latest` works); best effort."""
    link = Path(run_dir).parent / "latest"
    if link.exists() and not link.is_symlink():
        return  # a real file or folder named latest: not ours to replace
    temporary = link.with_name(f".latest.tmp-{os.getpid()}")
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(Path(run_dir).name, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)


def read_run(run_dir: Path) -> dict[str, Any]:
    run = read_record(run_dir, RUN_FILE, "the run's provenance")
    model = run.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("path"), str) or not isinstance(model.get("sha256"), str):
        raise CheckpointError(f"{RUN_FILE} is damaged: it does not name the model file and its sha256",
                              where=str(Path(run_dir) / RUN_FILE),
                              fix="restore the file from a backup, or start a new run")
    return run


def read_record(run_dir: Path, name: str, holds: str) -> dict[str, Any]:
    """A JSON object the run directory must hold; damage is a CheckpointError (exit 4) naming the file."""
    path = Path(run_dir) / name
    if not Path(run_dir).is_dir() or (name == RUN_FILE and not path.is_file()):
        raise UsageError(f"'{run_dir}' is not an alignguard run directory (no {RUN_FILE})",
                         fix="pass the --out directory of an `alignguard train` run")
    if not path.is_file():
        raise CheckpointError(f"the run directory has no {name} ({holds})", where=str(path),
                              fix=f"restore {name} from a backup, or start a new run")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        detail = error.strerror if isinstance(error, OSError) else str(error)[:120]
        raise CheckpointError(f"{name} is damaged and cannot be read ({type(error).__name__}: {detail})",
                              where=str(path), fix=f"restore the file from a backup ({name} holds {holds}), "
                              "or start a new run") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} is damaged: it holds a JSON {type(value).__name__}, not an object",
                              where=str(path), fix="restore the file from a backup, or start a new run")
    return value


def update_run(run_dir: Path, **changes: Any) -> None:
    run = read_run(run_dir)
    for key, value in changes.items():
        if key == "resume":
            run.setdefault("resumes", []).append(value)
        else:
            run[key] = value
    _write_json(Path(run_dir) / RUN_FILE, run)


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(clean(value), indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)
