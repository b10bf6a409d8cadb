"""Atomic checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and JSON-compatible primitives only (no pickled objects), so
loading never executes code from the file. Writes go to a temporary file in the same directory,
are fsynced, then ``os.replace``d over the old file: a crash or a full disk leaves the previous
checkpoint intact and no half-written file under the real name.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

from alignguard.errors import CheckpointError

FORMAT = "alignguard-checkpoint"
VERSION = 1


def _write_payload(handle, payload: dict[str, Any]) -> None:
    """Serialise into an open file (tests replace this to simulate a full disk)."""
    import torch

    torch.save(payload, handle)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            _write_payload(handle, {"format": FORMAT, "version": VERSION, **payload})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except (OSError, RuntimeError) as error:  # torch's zip writer reports a failed write as RuntimeError
        temporary.unlink(missing_ok=True)
        full = _disk_full(error, path.parent)
        previous = f"the previous {path.name} is intact" if path.exists() else f"no earlier {path.name} existed"
        raise CheckpointError(
            f"could not write checkpoint {path.name}: {'the disk is full' if full else _reason(error)}; "
            f"{previous}",
            where=str(path),
            fix=("free disk space (or point --out at a larger disk), then continue with --resume"
                 if full else "check the run directory is writable, then continue with --resume"),
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or (str(error).splitlines() or [type(error).__name__])[0]
    return text[:200]


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(descriptor)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely; anything unreadable or foreign is a CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"there is no checkpoint {path.name} to resume from",
            where=str(path),
            fix="start a new run without --resume, or point --out at the run directory that holds checkpoints/",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            AttributeError, KeyError, IndexError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {path.name} is corrupt or not a checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'})",
            where=str(path),
            fix="resume from another checkpoint (e.g. copy best.pt's run elsewhere) or start a new run",
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path.name} is not an alignguard checkpoint",
            where=str(path),
            fix="point --out at a run directory written by `alignguard train`",
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path.name} has checkpoint format version {payload.get('version')}, this alignguard reads {VERSION}",
            where=str(path),
            fix="resume with the alignguard version that wrote it, or start a new run",
        )
    return payload


def load_model_state(model, state: dict[str, Any], path: Path) -> None:
    """Load weights, turning a key or shape mismatch into a CheckpointError that lists the differences."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}")
        if reshaped:
            parts.append("shape differs for " + ", ".join(
                f"{k} ({tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model)" for k in reshaped[:5]))
        raise CheckpointError(
            f"checkpoint {Path(path).name} does not match the model: {'; '.join(parts)}",
            where=str(path),
            fix="resume with the model file the run was started with, or start a new run",
        )
    model.load_state_dict(state)


# --- RNG state as tensors and primitives (weights_only-safe) -------------------------------------

def capture_rng() -> dict[str, Any]:
    import numpy as np
    import torch

    kind, keys, position, has_gauss, cached = np.random.get_state()
    python_version, python_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": python_version, "state": list(python_state), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
