"""A progress indicator on standard error for runs longer than a few seconds.

On a terminal, a spinner with the elapsed time appears once the run has taken `after` seconds
(a quick check prints nothing extra) and is erased when it ends. Off a terminal (CI logs, pipes)
and with --quiet it prints nothing: standard output stays the report alone either way.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

AFTER_SECONDS = 2.0


@contextmanager
def progress(message: str, *, enabled: bool = True, after: float = AFTER_SECONDS, console=None) -> Iterator[None]:
    from rich.console import Console

    console = console or Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield
        return
    start = time.perf_counter()
    stop = threading.Event()

    def spin() -> None:
        if stop.wait(after):
            return
        with console.status(f"{message} …", spinner="dots") as status:
            while not stop.wait(0.25):
                status.update(f"{message} … {time.perf_counter() - start:.0f} s")

    thread = threading.Thread(target=spin, name="alignguard-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
