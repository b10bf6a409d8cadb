"""`alignguard init MODEL [--output spec.yaml]`: inspect a model file and write a starter spec
(the survey is `api.survey_model`, run in the model worker, and the spec `api.starter_text`, written
here; this module parses and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors
from alignguard.cli.timeout import resolve_timeout, timeout_option

SCHEMA_FILE = "alignguard-spec.schema.json"  # written beside the spec; `alignguard schema` prints the same


@reports_errors
def init_command(
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    output: Path = typer.Option(Path("spec.yaml"), "--output", "-o", help="Where to write the starter spec."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
    timeout: Optional[float] = timeout_option("the survey of MODEL"),
    timings: bool = typer.Option(False, "--timings", help="Show the time spent in each phase of the survey."),
) -> None:
    """Inspect MODEL and write a starter design spec for you to tighten."""
    from alignguard.errors import UsageError

    refuse_overwriting_inputs([output], [model], "--output")
    if output.exists() and not force:
        raise UsageError(f"'{output}' already exists", fix="choose another --output, or pass --force to overwrite it")
    from alignguard.api import starter_text, survey_model
    from alignguard.cli.heap import torch_for_the_worker
    from alignguard.isolation import run_isolated

    limit = resolve_timeout(timeout)
    torch_for_the_worker()
    # what only this process needs (the schema, the YAML writer) is made before the job is sent: the
    # prestarted worker is still importing torch then, so it costs the survey nothing
    schema_text = spec_schema_json()
    import alignguard.spec.starter  # noqa: F401  (ruamel.yaml and the spec loader, for starter_text)

    survey = run_isolated(survey_model, model, activity="the survey", timeout=limit, stdout_to_stderr=True)
    text = starter_text(survey, model.stem)  # here, while the worker frees its memory
    # editors with the YAML language server validate and complete the spec from the schema beside it
    schema = output.parent / SCHEMA_FILE
    text = f"# yaml-language-server: $schema={SCHEMA_FILE}\n" + text
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        schema.write_text(schema_text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write '{output}': {exc.strerror or exc}", fix="choose a writable --output") from None
    typer.echo(f"wrote {output}: {len(survey.inputs)} inputs, {len(survey.symbols)} symbols, "
               f"{len(survey.components)} components, {len(survey.losses)} losses")
    typer.echo(f"wrote {schema}: the JSON Schema editors check {output.name} against (its first line names it)")
    typer.echo(f"next: add the design's formulas and forbidden flows (see the comments), then "
               f"`alignguard check {output} {model}`")
    if timings:
        typer.echo(timings_line(survey.timings))


def timings_line(phases: dict[str, float]) -> str:
    """The survey's phases, slowest first (what `init --timings` prints)."""
    rows = sorted(phases.items(), key=lambda item: -item[1])
    return "timings: " + (", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in rows) or "none recorded")


def spec_schema_json() -> str:
    import json

    from alignguard.spec.model import Spec

    return json.dumps(Spec.model_json_schema(by_alias=True), indent=2) + "\n"
