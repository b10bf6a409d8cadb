"""The root `alignguard` command and its subcommands (the entry point, `main`, is in cli/app.py).
Each command lives in its own module; none imports torch at import time, so `alignguard --help`
and `alignguard schema` answer instantly."""

from __future__ import annotations

import json
import os

import typer

from alignguard.cli import data as data_cli
from alignguard.cli.check import check_command
from alignguard.cli.errors import reports_errors
from alignguard.cli.graph import graph_command
from alignguard.cli.init import init_command
from alignguard.cli.mutate import mutate_command
from alignguard.cli.train import evaluate_command, train_command

app = typer.Typer(
    name="alignguard",
    help="Prove a PyTorch model implements its design before anyone spends GPU hours training it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[default: 0]" and "[tool.alignguard]" print as written
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
)


def _version(value: bool) -> None:
    if value:
        from alignguard import __version__

        typer.echo(f"alignguard {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Print Python tracebacks of internal errors."),
) -> None:
    """Prove a PyTorch model implements its design before anyone spends GPU hours training it."""
    if debug:
        os.environ["ALIGNGUARD_DEBUG"] = "1"  # the model worker and every error door read it


app.command("check")(check_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("graph")(graph_command)
app.command("init")(init_command)
app.command("mutate")(mutate_command)
app.add_typer(data_cli.app, name="data", help="Generate, import and inspect datasets.")


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of design specs (point your editor's YAML plugin at it)."""
    from alignguard.spec.model import Spec

    typer.echo(json.dumps(Spec.model_json_schema(by_alias=True), indent=2))


@app.command("explain")
@reports_errors
def explain_command(check_id: str = typer.Argument(..., help="A check id, e.g. noise.present.")) -> None:
    """Explain what a check proves and how to fix its typical failures."""
    import difflib

    from alignguard.checks.catalogue import all_check_ids, explanation
    from alignguard.errors import UsageError

    text = explanation(check_id)
    if text is None:
        ids = all_check_ids()
        guess = difflib.get_close_matches(check_id, ids, n=1)
        raise UsageError(f"there is no check '{check_id}'",
                         fix=(f"did you mean '{guess[0]}'? " if guess else "") + "known: " + ", ".join(ids))
    typer.echo(f"{check_id}\n\n{text}")
