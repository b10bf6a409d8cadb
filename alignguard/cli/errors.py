"""The CLI's one exit door for user errors: a paragraph on stderr and a distinct exit code.

Anything else that escapes a command (an alignguard bug, an OSError nobody anticipated) is still
exit 2 with a located one-line summary, never exit 1, which means "misaligned"; the traceback is
printed only with `alignguard --debug` (or ALIGNGUARD_DEBUG=1).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Callable, TypeVar

import typer

from alignguard.errors import AlignguardError, ExitCode

F = TypeVar("F", bound=Callable)


def reports_errors(function: F) -> F:
    """Turn AlignguardError into its paragraph and exit code; Ctrl-C into exit 130."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except AlignguardError as error:
            print(str(error), file=sys.stderr)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt:
            print("interrupted.", file=sys.stderr)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - the contract: exit 2, never a bare traceback
            if debugging():
                traceback.print_exc()
            frame = (traceback.extract_tb(error.__traceback__) or [None])[-1]
            where = f" Where: {frame.filename}:{frame.lineno}." if frame else ""
            print(f"internal error: {type(error).__name__}: {error}.{where} Fix: this is an alignguard bug; "
                  "report it with the output of `alignguard --debug ...`.", file=sys.stderr)
            raise typer.Exit(int(ExitCode.USAGE)) from None

    return wrapper  # type: ignore[return-value]


def debugging() -> bool:
    return os.environ.get("ALIGNGUARD_DEBUG", "") not in ("", "0")


def refuse_overwriting_inputs(outputs, inputs, option: str) -> None:
    """An output option must never name a file the command reads (`--output json:spec.yaml`)."""
    from pathlib import Path

    from alignguard.errors import UsageError

    read = {Path(p).resolve(): Path(p) for p in inputs}
    for output in outputs:
        if Path(output).resolve() in read:
            raise UsageError(f"{option} '{output}' is one of the command's inputs; writing it would destroy it",
                             fix=f"give {option} a new file name, e.g. alignguard-report.json")
