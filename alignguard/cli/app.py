"""The `alignguard` console script: `main` starts the model worker early, then runs the command.

A command that runs model code (check, init, graph) spends most of its start-up importing torch,
in the worker that will run the model. `main` forks that worker first, before the CLI's own imports
(typer, rich, the commands, the renderers), so the worker imports torch while this process parses
the command line and reads the spec; this process never imports torch (isolation.prestart,
docs/architecture.md). Only what both need (alignguard.api: pydantic and the spec models) is
imported before the fork. Everything else (`--help`, `schema`, a command given `--help`) starts no
worker. The Typer application is `alignguard.cli.commands.app`, also reachable here as `app`.
"""

from __future__ import annotations

import sys
from typing import Any

started: float | None = None  # time.perf_counter() when main began: `check --timings` counts its total from it
PRESTARTED = ("check", "init", "graph")  # commands whose one worker imports torch with sleeping threads
NO_WORK = ("--help", "--version", "-V", "--install-completion", "--show-completion")


def main() -> None:
    import time

    from alignguard.cli.pipes import protect_stdout
    from alignguard.isolation import mark_fresh_process, prestart

    global started
    started = time.perf_counter()
    protect_stdout()  # `alignguard check ... | head`: the verdict's exit code, not rich's or click's 1

    mark_fresh_process()  # no torch operator has run in this process: workers forked from it may use threads
    if not runs_model_code(sys.argv[1:]):
        from alignguard.cli.commands import app

        return app()
    # both processes need the use cases' module (the worker unpickles its job, run_check and the Spec,
    # with it): imported once, before the fork, instead of twice after it (~0.15 s of CPU, pydantic's)
    import alignguard.api  # noqa: F401
    from alignguard.cli.heap import warm_up_worker

    prestart(warm_up_worker, "import torch")
    from alignguard.cli.commands import app

    try:
        app()
    except SystemExit as exc:  # typer always ends this way
        _exit_at_once(exc.code)
    raise SystemExit(0)


def _exit_at_once(code: object) -> None:
    """End a command that ran model code: flush the streams, wait for its worker (ending while the report
    was written), run the atexit handlers, then os._exit, without the interpreter's teardown of every
    module (0.02-0.17 s of CPU after the verdict is printed). With threads still running, or a code
    that is not a number, the ordinary exit (it joins them, prints it)."""
    import atexit
    import os
    import threading

    from alignguard.isolation import reap_workers

    if threading.active_count() > 1 or not (code is None or isinstance(code, int)):
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe (`alignguard check ... | head`): nothing more can be said there
            pass
    reap_workers()  # the report is out; the worker, ending meanwhile, is waited for (no orphan)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code or 0)


def runs_model_code(argv: list[str]) -> bool:
    """Whether these arguments name a command that will run model code in one worker (the global
    options before the command are flags, so the first other word is the command)."""
    command = next((word for word in argv if not word.startswith("-")), None)
    return command in PRESTARTED and not any(word in NO_WORK for word in argv)


def __getattr__(name: str) -> Any:
    if name == "app":  # tests and tools drive the Typer app in-process (typer.testing.CliRunner)
        from alignguard.cli.commands import app

        return app
    raise AttributeError(f"module 'alignguard.cli.app' has no attribute '{name}'")


if __name__ == "__main__":
    main()
