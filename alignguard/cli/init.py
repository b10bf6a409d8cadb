"""`alignguard init MODEL [--output spec.yaml]`: inspect a model file and write a starter spec
(the inference is `api.infer_starter_spec`; this module parses and prints)."""

from __future__ import annotations

from pathlib import Path

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors


@reports_errors
def init_command(
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    output: Path = typer.Option(Path("spec.yaml"), "--output", "-o", help="Where to write the starter spec."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Inspect MODEL and write a starter design spec for you to tighten."""
    from alignguard.errors import UsageError

    refuse_overwriting_inputs([output], [model], "--output")
    if output.exists() and not force:
        raise UsageError(f"'{output}' already exists", fix="choose another --output, or pass --force to overwrite it")
    from alignguard.api import infer_starter_spec
    from alignguard.cli.heap import import_torch_and_freeze_heap
    from alignguard.isolation import run_isolated

    import_torch_and_freeze_heap()
    survey, text = run_isolated(infer_starter_spec, model, activity="the survey", stdout_to_stderr=True)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write '{output}': {exc.strerror or exc}", fix="choose a writable --output") from None
    typer.echo(f"wrote {output}: {len(survey.inputs)} inputs, {len(survey.symbols)} symbols, "
               f"{len(survey.components)} components, {len(survey.losses)} losses")
    typer.echo(f"next: add the design's formulas and forbidden flows (see the comments), then "
               f"`alignguard check {output} {model}`")
