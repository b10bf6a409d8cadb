"""Standard output that a closed pipe cannot turn into a verdict.

`alignguard check ... | head` closes the pipe after a few lines. rich's Console answers the
BrokenPipeError with SystemExit(1) and click with exit 1, both of which read as "misaligned"
whatever the check found, and both stop the command before its `--output` files are written. The
CLI's standard output is wrapped instead: the first write to a closed pipe points file descriptor 1
at /dev/null and the command goes on, so its exit code is the verdict's and its files are written.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class PipeSafeStream:
    """A text stream that goes quiet, instead of raising, once its reader has gone."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        """Drop what is buffered for the gone reader and send the rest of the run's output nowhere
        (the descriptor too: a forked worker or the interpreter's last flush writes to fd 1)."""
        self.closed_by_reader = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def protect_stdout() -> None:
    """Wrap sys.stdout once (the console script's first step)."""
    if sys.stdout is not None and not isinstance(sys.stdout, PipeSafeStream):
        sys.stdout = PipeSafeStream(sys.stdout)  # type: ignore[assignment]
