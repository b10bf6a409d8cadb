"""Where a captured op comes from: the user's source line (frames in torch or alignguard are skipped)."""

from __future__ import annotations

import re
from pathlib import Path
from types import FrameType

import torch

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
# Frames in torch or in alignguard itself are never "the user's line".
SKIP_DIRS = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1]),
             torch.__path__[0])


def is_user_file(filename: str) -> bool:
    return not filename.startswith(SKIP_DIRS) and not filename.startswith("<")


def source_of_trace(stack_trace: str | None) -> tuple[str | None, int | None]:
    """Innermost user frame of an fx `stack_trace` string."""
    if not stack_trace:
        return None, None
    frames = [(f, int(n)) for f, n in _FRAME.findall(stack_trace) if is_user_file(f)]
    return frames[-1] if frames else (None, None)


def source_of_frame(frame: FrameType | None) -> tuple[str | None, int | None]:
    """Innermost user frame of a live Python stack."""
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None, None


def user_frame_of_exception(exc: BaseException) -> str | None:
    """file:line of the innermost user frame in an exception's traceback."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            found = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def param_scopes(qualified_name: str) -> tuple[str, ...]:
    """Enclosing module paths of a parameter: `a.b.weight` -> ("a", "a.b")."""
    parts = qualified_name.split(".")[:-1]
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
