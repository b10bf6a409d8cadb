"""The CLI's one exit door for user errors: a paragraph on stderr and a distinct exit code."""

from __future__ import annotations

import functools
import sys
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

    return wrapper  # type: ignore[return-value]
