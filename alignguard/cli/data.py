"""`alignguard data ...`: generate the built-in benchmark, import real data, inspect a dataset.

Register on the root app with `app.add_typer(data.app, name="data")`. No torch import here: these
commands only need NumPy, and `alignguard --help` must stay fast.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from alignguard.cli.errors import reports_errors
from alignguard.errors import UsageError

app = typer.Typer(
    help="Datasets: generate the built-in benchmark with a known Bayes ceiling, import ENCODE-DREAM-style "
    "data, inspect either.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help is plain text: "[default: 0]" prints as written
)
console = Console()
err_console = Console(stderr=True)


class Mechanism(str, Enum):
    multiplicative = "multiplicative"
    additive = "additive"


class Background(str, Enum):
    iid = "iid"
    markov = "markov"


class Format(str, Enum):
    text = "text"
    json = "json"


FORMAT_HELP = "Summary on standard output: text (tables) or json (one document; progress goes to standard error)."


def _format_option():
    return typer.Option(Format.text, "--format", "-f", help=FORMAT_HELP)


class AccessTransform(str, Enum):
    log1p = "log1p"
    none = "none"


def _config_error(error, what: str) -> UsageError:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors())
    return UsageError(f"invalid {what}: {problems}", fix="see docs/data.md or `alignguard data COMMAND --help`")


def _default(field: str):
    from alignguard.data.config import SynthConfig

    return SynthConfig.model_fields[field].default


@app.command()
@reports_errors
def synth(
    out: Path | None = typer.Option(
        None, "--out", help="Dataset directory. [default: the cache, $ALIGNGUARD_CACHE or .alignguard-cache]"
    ),
    seed: int | None = typer.Option(None, help=f"Random seed [default: {_default('seed')}]."),
    n_loci: int | None = typer.Option(None, help=f"Distinct loci [default: {_default('n_loci')}]."),
    cells_train: int | None = typer.Option(
        None, help=f"Training cell lines [default: {_default('cells_train')}]."
    ),
    cells_val: int | None = typer.Option(None, help=f"Validation cell lines [default: {_default('cells_val')}]."),
    cells_test: int | None = typer.Option(
        None, help=f"Held-out test cell lines [default: {_default('cells_test')}]."
    ),
    positive_rate: float | None = typer.Option(
        None, help=f"Target positive rate of the training cells [default: {_default('positive_rate')}]."
    ),
    mechanism: Mechanism | None = typer.Option(
        None, help="Ground truth: multiplicative (CMDN's sigmoid((M U + B)/T)) or additive (legacy) "
        "[default: multiplicative]."
    ),
    background: Background | None = typer.Option(None, help="Background DNA model [default: iid]."),
    gc: float | None = typer.Option(None, help=f"Background GC content [default: {_default('gc')}]."),
    motif: str | None = typer.Option(None, help=f"JASPAR matrix id [default: {_default('motif')}]."),
    cofactor: str | None = typer.Option(None, help="Optional co-factor JASPAR id, e.g. MA0079.5 (SP1). [default: none]"),
    window: int | None = typer.Option(None, help=f"Window length L [default: {_default('window')}]."),
    descriptor_dim: int | None = typer.Option(
        None, help=f"Cell descriptor dimension D [default: {_default('descriptor_dim')}]."
    ),
    plant_rate: float | None = typer.Option(
        None, help=f"Fraction of loci with a motif instance [default: {_default('plant_rate')}]."
    ),
    cell_effect: float | None = typer.Option(
        None, help="Strength of the cell descriptor's effect on M*, T* and rates (2 = clearer multiplicative "
        f"contrast) [default: {_default('cell_effect')}]."
    ),
    access_effect: float | None = typer.Option(
        None, help=f"Strength of accessibility in B* and T* [default: {_default('access_effect')}]."
    ),
    diagnostic_splits: bool = typer.Option(
        False, help="Also write test_new_cells and test_new_loci (one kind of novelty each)."
    ),
    shard_loci: int | None = typer.Option(None, help=f"Loci per shard [default: {_default('shard_loci')}]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset at --out."),
    fmt: Format = _format_option(),
) -> None:
    """Generate the planted-ground-truth benchmark (deterministic from the seed) and print its summary."""
    from pydantic import ValidationError

    from alignguard.data.config import SynthConfig

    chosen = {
        "seed": seed, "n_loci": n_loci, "cells_train": cells_train, "cells_val": cells_val,
        "cells_test": cells_test, "positive_rate": positive_rate, "gc": gc, "motif": motif,
        "cofactor": cofactor, "window": window, "descriptor_dim": descriptor_dim, "plant_rate": plant_rate,
        "shard_loci": shard_loci, "cell_effect": cell_effect, "access_effect": access_effect,
        "mechanism": mechanism.value if mechanism else None,
        "background": background.value if background else None,
    }  # fmt: skip
    settings = {key: value for key, value in chosen.items() if value is not None}
    settings["diagnostic_splits"] = diagnostic_splits
    try:
        config = SynthConfig(**settings)
    except ValidationError as error:
        raise _config_error(error, "benchmark settings") from None
    from alignguard.data.store import load_manifest
    from alignguard.data.synth import cached_generate, generate

    started = time.perf_counter()
    status = _status(fmt)

    def progress(done: int, total: int) -> None:
        if total > 1:
            status.print(f"shard {done}/{total}", style="dim")

    if out is None:
        path = cached_generate(config, progress=progress)
    else:
        path = generate(config, out, overwrite=force, progress=progress)
    manifest = load_manifest(path, verify="size")
    seconds = time.perf_counter() - started
    status.print(f"wrote [bold]{path}[/] in {seconds:.2f} s")
    _show(manifest, path, fmt, per_cell=True, checksums="sizes only", seconds=round(seconds, 3))


def _split_list(text: str | None) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()] if text else []


def _access_map(pairs: list[str], directory: Path | None, cells: list[str]) -> dict[str, Path]:
    mapping: dict[str, Path] = {}
    if directory is not None:
        for cell in cells:
            for suffix in (".bedGraph", ".bedgraph", ".bedGraph.gz", ".bedgraph.gz", ".tsv", ".tsv.gz", ".bw",
                           ".bigWig", ".bigwig"):  # fmt: skip
                if (directory / f"{cell}{suffix}").is_file():
                    mapping[cell] = directory / f"{cell}{suffix}"
                    break
    for pair in pairs:
        cell, sep, path = pair.partition("=")
        if not sep or not cell or not path:
            raise UsageError(f"--access expects CELL=PATH, got {pair!r}", fix="e.g. --access K562=K562.bedGraph")
        mapping[cell] = Path(path)
    return mapping


@app.command()
@reports_errors
def convert(
    genome: Path = typer.Option(..., help="Genome FASTA (pyfaidx builds a .fai next to it if missing)."),
    labels: Path = typer.Option(..., help="Labels TSV: chrom start end <cell>... with B/U/A (.gz ok)."),
    descriptors: Path = typer.Option(..., help="Cell descriptor TSV: cell f1 ... fD."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to write."),
    access: list[str] = typer.Option([], "--access", help="CELL=PATH (bedGraph/TSV/bigWig); repeatable."),
    access_dir: Path | None = typer.Option(None, help="Folder with <cell>.bedGraph (or .tsv/.bw) per cell. [default: none; --access only]"),
    window: int = typer.Option(200, help="Window length L centred on each label bin."),
    val_chroms: str | None = typer.Option(None, help="Comma-separated validation chromosomes. [default: none]"),
    test_chroms: str | None = typer.Option(None, help="Comma-separated held-out test chromosomes. [default: none]"),
    val_cells: str | None = typer.Option(None, help="Comma-separated validation cell lines. [default: none]"),
    test_cells: str | None = typer.Option(None, help="Comma-separated held-out test cell lines. [default: none]"),
    access_transform: AccessTransform = typer.Option(AccessTransform.log1p, help="Transform of mean signal."),
    shard_rows: int = typer.Option(200_000, help="Label rows per shard."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset at --out."),
    fmt: Format = _format_option(),
) -> None:
    """Import ENCODE-DREAM-style data (FASTA, labels, accessibility, descriptors) into the dataset format."""
    from pydantic import ValidationError

    from alignguard.data.config import RealDataConfig
    from alignguard.data.real import convert_real, read_label_header
    from alignguard.data.store import load_manifest

    started = time.perf_counter()
    cells = read_label_header(labels)
    try:
        config = RealDataConfig(
            genome=genome, labels=labels, descriptors=descriptors,
            accessibility=_access_map(access, access_dir, cells), window=window,
            val_chroms=_split_list(val_chroms), test_chroms=_split_list(test_chroms),
            val_cells=_split_list(val_cells), test_cells=_split_list(test_cells),
            access_transform=access_transform.value, shard_rows=shard_rows,
        )  # fmt: skip
    except ValidationError as error:
        raise _config_error(error, "import settings") from error
    path = convert_real(config, out, overwrite=force)
    manifest = load_manifest(path, verify="size")
    seconds = time.perf_counter() - started
    _status(fmt).print(f"wrote [bold]{path}[/] in {seconds:.2f} s")
    _show(manifest, path, fmt, per_cell=True, checksums="sizes only", seconds=round(seconds, 3))


@app.command()
@reports_errors
def inspect(
    path: Path = typer.Argument(..., help="Dataset directory (holds manifest.json)."),
    fast: bool = typer.Option(False, "--fast", help="Check shard sizes only, not SHA-256 checksums."),
    per_cell: bool = typer.Option(True, "--per-cell/--no-per-cell", help="Also show one row per cell line."),
    fmt: Format = _format_option(),
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Old spelling of --format json."),
) -> None:
    """Verify a dataset and show sizes, positive rates and Bayes AUPR per split and cell line."""
    from alignguard.data.store import load_manifest

    fmt = Format.json if as_json else fmt
    manifest = load_manifest(path, verify="size" if fast else "full")
    checksums = "sizes only" if fast else "verified"
    if fmt is Format.text:
        console.print(f"[bold]{path}[/]: checksums {'not checked (--fast)' if fast else 'OK'}")
    _show(manifest, path, fmt, per_cell=per_cell, checksums=checksums)


def _status(fmt: Format) -> Console:
    """Where progress and 'wrote ...' lines go: standard error when standard output carries a document."""
    return err_console if fmt is Format.json else console


def _show(manifest, path: Path, fmt: Format, *, per_cell: bool, checksums: str, **extra) -> None:
    from alignguard.report.dataset import render_json, summary_document, summary_renderables

    if fmt is Format.json:
        typer.echo(render_json(summary_document(manifest, path, checksums, **extra)), nl=False)
        return
    for renderable in summary_renderables(manifest, per_cell=per_cell):
        console.print(renderable)
