"""`alignguard graph SPEC MODEL --output graph.svg|.html|.dot|.mmd [--depth N]`: draw the
captured forward graph with the spec's symbols, components and formulas highlighted and any
forbidden path that exists in red."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors
from alignguard.cli.timeout import resolve_timeout, timeout_option

LARGE = 400  # nodes; past this, suggest --depth


@reports_errors
def graph_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML)."),
    model: Path = typer.Argument(..., help="Model file defining build_model and example_batch."),
    output: Path = typer.Option(Path("graph.html"), "--output", "-o",
                                help="File to write: .html (self-contained page), .svg, .dot/.gv or .mmd (Mermaid)."),
    depth: Optional[int] = typer.Option(None, "--depth", min=1,
                                        help="Fold modules nested this deep into one node each (1: top-level). [default: no folding]"),
    timeout: Optional[float] = timeout_option("drawing the graph"),
) -> None:
    """Draw MODEL's captured graph with SPEC's symbols, components and formulas highlighted."""
    from alignguard.cli.heap import torch_for_the_worker
    from alignguard.errors import UsageError
    from alignguard.isolation import run_isolated
    from alignguard.report.graph_render import SUFFIXES

    refuse_overwriting_inputs([output], [spec, model], "--output")
    if output.suffix.lower() not in SUFFIXES:  # before the slow capture
        raise UsageError(f"cannot draw a graph as '{output.name}'", fix=f"use one of {', '.join(SUFFIXES)}")
    limit = resolve_timeout(timeout)
    torch_for_the_worker()
    view = run_isolated(_draw, spec, model, output, depth, activity="drawing the graph", timeout=limit,
                        stdout_to_stderr=True)
    count = view.graph.number_of_nodes()
    patterns = sum(1 for _, data in view.graph.nodes(data=True) if data["forbidden"])
    typer.echo(f"wrote {output} ({count} nodes, {len(view.red)} forbidden-path edges and {patterns} "
               f"forbidden-pattern nodes in red)")
    for note in view.notes:
        typer.echo(f"  note: {note}")
    if count > LARGE and depth is None:
        print(f"hint: {count} nodes is a lot to read; --depth 1 folds each top-level module into one node",
              file=sys.stderr)


def _draw(spec: Path, model: Path, output: Path, depth: Optional[int]):
    """In the model worker: capture, fold and write the graph; the view comes back for the summary."""
    from alignguard.api import graph_view
    from alignguard.report.graph_render import write_graph
    from alignguard.report.graph_view import collapse

    view = graph_view(spec, model)
    if depth is not None:
        view = collapse(view, depth)
    write_graph(view, output)
    return view
