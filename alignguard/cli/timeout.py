"""`--timeout SECONDS`, shared by every command that runs model code before training (check, init,
graph, mutate, train's gate): the option, its documented default, and its precedence (the command
line, else `timeout` in [tool.alignguard], else CHECK_TIMEOUT_S)."""

from __future__ import annotations

from typing import Optional

import typer

CHECK_TIMEOUT_S = 600.0  # a check takes seconds; ten minutes means a hang, not a large model


def timeout_option(what: str = "a check") -> Optional[float]:
    """The option, its help naming `what` it bounds."""
    return typer.Option(
        None, "--timeout", min=0, metavar="SECONDS",
        help=f"Stop {what} still running after this long (exit 2, naming where it hung); 0: no limit. "
        f"[default: {CHECK_TIMEOUT_S:g}, or [tool.alignguard] timeout]", show_default=False)


def resolve_timeout(given: float | None, config=None) -> float | None:
    """Seconds to allow, or None for no limit (0 on the command line or in the config)."""
    if config is None:
        from alignguard.config import load_config

        config = load_config()
    limit = given if given is not None else config.timeout if config.timeout is not None else CHECK_TIMEOUT_S
    return limit or None
