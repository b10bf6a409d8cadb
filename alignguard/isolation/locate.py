"""Name where a worker stopped: the phase of alignguard it was in and the line of user code.

Works on plain (file, line, function) frames, innermost last, so it serves a live stack (the
os._exit hook), a traceback (sys.exit, an exception) and faulthandler's text dump (a hang) alike.
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from pathlib import Path
from types import FrameType, TracebackType

Frame = tuple[str, int, str]  # filename, line, function

PACKAGE = str(Path(__file__).resolve().parents[1])  # .../alignguard
_LIBRARIES = tuple({str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                    if (p := sysconfig.get_paths().get(key))})
_DUMP_LINE = re.compile(r'^\s*File "(?P<file>.*)", line (?P<line>\d+) in (?P<function>\S+)')

# The alignguard function that called into user code says what the tool was doing.
_PHASES = {
    ("modelfile", "_import"): "importing the model file",
    ("modelfile", "build"): "build_model()",
    ("modelfile", "batch"): "example_batch()",
}
_ROOMS = {"structure": "structural", "gradients": "gradient", "probes": "probe"}
_FOLDERS = {
    "spec": "loading the spec", "graph": "capturing the forward graph", "gradients": "measuring gradients",
    "probes": "running the probes", "mutate": "mutation testing", "data": "loading data",
}


def frames_of_traceback(tb: TracebackType | None) -> list[Frame]:
    return [(f.filename, f.lineno or 0, f.name) for f in traceback.extract_tb(tb)]


def frames_of_stack(frame: FrameType | None) -> list[Frame]:
    stack: list[Frame] = []
    while frame is not None:
        stack.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return stack[::-1]


def frames_of_dump(text: str) -> list[Frame]:
    """The stack in a faulthandler dump of one thread (which lists the innermost call first)."""
    frames = [(m["file"], int(m["line"]), m["function"]) for m in map(_DUMP_LINE.match, text.splitlines()) if m]
    return frames[::-1]


def is_user_file(filename: str) -> bool:
    """Code the user wrote: not alignguard, not the standard library or an installed package."""
    if filename.startswith("<"):
        return False
    resolved = str(Path(filename).resolve()) if filename else ""
    return not resolved.startswith(PACKAGE) and not resolved.startswith(_LIBRARIES)


def user_location(frames: list[Frame]) -> str | None:
    """'file:line (function)' of the innermost user frame, or None."""
    for filename, line, function in reversed(frames):
        if is_user_file(filename):
            return f"{filename}:{line} (in {function})"
    return None


def phase(frames: list[Frame]) -> str | None:
    """What alignguard was doing: named after its innermost frame that is not this package's plumbing."""
    for filename, _, function in reversed(frames):
        resolved = str(Path(filename).resolve())
        if not resolved.startswith(PACKAGE) or "/isolation/" in resolved:
            continue
        parts = Path(resolved).relative_to(PACKAGE).parts
        folder, stem = parts[0], Path(parts[-1]).stem.lstrip("_")
        if (folder, function) in _PHASES:
            return _PHASES[(folder, function)]
        if folder == "modelfile":
            continue  # the door to user code (forward, loss_terms_at): its caller says what was being done
        if folder == "checks":
            room = _ROOMS.get(parts[1], "") if len(parts) > 2 else ""
            return f"the {room + ' ' if room else ''}checks ({stem.replace('_', ' ')})"
        if folder == "train":
            return "training" if stem == "trainer" else f"training ({stem})"
        if folder in _FOLDERS:
            return _FOLDERS[folder]
        return f"{'/'.join(parts)}:{function}"
    return None


def describe(frames: list[Frame]) -> str:
    """'during PHASE at FILE:LINE (in FUNCTION)', the parts that are known."""
    where, doing = user_location(frames), phase(frames)
    text = f"during {doing}" if doing else ""
    if where:
        text += (" " if text else "") + f"at {where}"
    return text or "at an unknown place"
