"""`alignguard check [SPEC MODEL]`: exit 0 aligned, 1 misaligned, 2 could not judge.

Without SPEC and MODEL it checks every pair of `[tool.alignguard]` in the nearest
pyproject.toml (from the working directory upward); the exit code is the worst of the pairs.
Settings come from the command line, else that table, else the defaults.

Reports: `--format` picks what goes to standard output (repeatable: `--format text --format
github`), `--output [FORMAT:]FILE` writes more reports in the same run (repeatable: `--output
sarif:alignguard.sarif --output junit:alignguard.xml`). When the spec or model cannot be
loaded, file and machine-readable outputs are still written, saying why, and the exit code is 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from alignguard.cli.errors import refuse_overwriting_inputs, reports_errors
from alignguard.cli.heap import torch_for_the_worker
from alignguard.cli.timeout import CHECK_TIMEOUT_S  # noqa: F401  (its old home: imported from here)
from alignguard.cli.timeout import resolve_timeout, timeout_option

FORMAT_HELP = ("Report on standard output, repeatable: text|concise|json|junit|sarif|github|markdown. "
               "[default: text, or [tool.alignguard] format]")
OUTPUT_HELP = ("Also write a report to FILE, repeatable. FORMAT is one of the --format names; without it the "
               "extension decides (.json .sarif .xml .md .txt).")
FROM_CONFIG = "or [tool.alignguard] {key}"


@reports_errors
def check_command(
    spec: Optional[Path] = typer.Argument(
        None, help="Design spec (YAML). Omit SPEC and MODEL to check every pair of [tool.alignguard] in "
        "pyproject.toml.", show_default=False),
    model: Optional[Path] = typer.Argument(
        None, help="Model file defining build_model, example_batch, loss_terms.", show_default=False),
    formats: Optional[List[str]] = typer.Option(None, "--format", "-f", metavar="FORMAT", help=FORMAT_HELP,
                                                show_default=False),
    outputs: Optional[List[str]] = typer.Option(None, "--output", "-o", metavar="[FORMAT:]FILE", help=OUTPUT_HELP,
                                                show_default=False),
    output_format: Optional[str] = typer.Option(
        None, "--output-format", metavar="full|concise",
        help="How the text report reads: full (every check, grouped) or concise (one line per finding). "
        "[default: full, " + FROM_CONFIG.format(key="output-format") + "]", show_default=False),
    statistics: bool = typer.Option(False, "--statistics", help="After the report, count the findings per check id."),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Lowest severity that fails the check: error|warning. "
        "[default: error, " + FROM_CONFIG.format(key="fail-on") + "]", show_default=False),
    exit_zero: bool = typer.Option(False, "--exit-zero",
                                   help="Exit 0 even when there are findings (a run that could not judge still "
                                   "exits 2)."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Print only the findings, one line each (nothing when aligned), and no "
                               "progress indicator."),
    timings: bool = typer.Option(False, "--timings", help="Show the time spent in each phase."),
    timeout: Optional[float] = timeout_option("a check"),
) -> None:
    """Check that MODEL implements the design in SPEC (or every configured pair)."""
    from alignguard.config import load_config

    config = load_config()
    pairs = _pairs(spec, model, config)
    plan = ReportPlan.parse(formats or config.format or [], outputs or [], fail_on or config.fail_on or "error",
                            timings, output_format=output_format or config.output_format or "full",
                            statistics=statistics, quiet=quiet, pairs=len(pairs))
    refuse_overwriting_inputs([path for _, path in plan.files], [path for pair in pairs for path in pair], "--output")
    limit = resolve_timeout(timeout, config)
    reports = []
    codes = []
    for pair_spec, pair_model in pairs:
        report, code = _check_pair(pair_spec, pair_model, quiet=quiet, single=len(pairs) == 1, plan=plan,
                                   timeout=limit)
        reports.append(report)
        codes.append(code)
    plan.emit_all(reports)
    code = 2 if 2 in codes else max(codes)
    if len(pairs) > 1 and not quiet:
        _pairs_summary(pairs, reports, codes, plan)
    raise typer.Exit(0 if exit_zero and code == 1 else code)


def _pairs(spec: Path | None, model: Path | None, config) -> list[tuple[Path, Path]]:
    from alignguard.errors import UsageError

    if spec is not None and model is not None:
        return [(spec, model)]
    if spec is not None:
        raise UsageError(f"SPEC '{spec}' is given without a MODEL",
                         fix=f"alignguard check {spec} models/your_model.py, or give neither to check every "
                         "[tool.alignguard] pair of pyproject.toml")
    if not config.pairs:
        where = f"{config.path} has a [tool.alignguard] table, but no pairs" if config.path else (
            f"no pyproject.toml with a [tool.alignguard] table in {Path.cwd()} or above")
        raise UsageError(f"no SPEC and MODEL given, and {where}",
                         fix="run alignguard check SPEC MODEL, or list the pairs in pyproject.toml: "
                         "[[tool.alignguard.pairs]] spec = \"specs/model.yaml\" model = \"models/model.py\"")
    cwd = Path.cwd()
    return [(_shown(pair.spec, cwd), _shown(pair.model, cwd)) for pair in config.resolved_pairs()]


def _shown(path: Path, cwd: Path) -> Path:
    """A configured path as the user would type it: relative to the working directory when inside it."""
    try:
        return path.relative_to(cwd)
    except ValueError:
        return path


def _check_pair(spec: Path, model: Path, *, quiet: bool, single: bool, plan: "ReportPlan", timeout: float | None):
    """(Report, exit code) of one pair; a pair that cannot be judged is reported, and with one pair re-raised."""
    from alignguard.api import read_spec, run_check
    from alignguard.cli.progress import progress
    from alignguard.errors import AlignguardError
    from alignguard.isolation import run_isolated
    from alignguard.results import Report

    start = time.perf_counter()
    torch_for_the_worker()
    torch_imported = time.perf_counter()
    worker_phases: dict[str, float] = {}
    try:
        with progress(f"alignguard: checking {model} against {spec}", enabled=not quiet):
            # read here, no user code: the worker (prestarted) is meanwhile importing torch
            spec_start = time.perf_counter()
            design = read_spec(spec)
            spec_read = time.perf_counter() - spec_start
            plan.load_renderers()  # this process would only wait for the worker: import them now
            # the model file runs in a worker: its exits, prints and hangs cannot stand in for a verdict
            report = run_isolated(run_check, design, model, spec_path=str(spec), timeout=timeout,
                                  stdout_to_stderr=True, timings=worker_phases)
    except AlignguardError as error:
        if single:
            plan.emit(Report.failed_run(error, str(spec), str(model)), console_text=False)
            raise  # reports_errors prints the paragraph and exits with the error's code
        print(str(error), file=sys.stderr)
        return Report.failed_run(error, str(spec), str(model)), int(error.exit_code)
    # phases nest (a check family includes the capture it triggered), so the wall time is its own row,
    # from the command's start when the console script ran it for one pair (its worker started then)
    from alignguard.cli import app

    report.timings["total"] = time.perf_counter() - (app.started if single and app.started else start)
    # a prestarted worker imported torch while this process parsed the command line (cli/app.py)
    report.timings.update(worker_phases)
    report.timings.setdefault("import torch", torch_imported - start)
    report.timings["load spec"] = spec_read
    return report, int(report.exit_code(plan.options.fail_on))


def _pairs_summary(pairs, reports, codes, plan: "ReportPlan") -> None:
    words = {0: "aligned", 1: "misaligned", 2: "could not judge"}
    counts = {word: sum(1 for code in codes if words.get(code, words[2]) == word) for word in words.values()}
    text = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    print(f"{len(pairs)} spec/model pairs: {text}", file=sys.stderr if plan.document_on_stdout else sys.stdout)


class ReportPlan:
    """Which formats go to standard output and which to files, checked before the run starts."""

    def __init__(self, stdout_formats, files, options, *, output_format: str = "full", statistics: bool = False,
                 quiet: bool = False) -> None:
        self.stdout_formats = stdout_formats
        self.files = files
        self.options = options
        self.output_format = output_format
        self.statistics = statistics
        self.quiet = quiet

    @property
    def document_on_stdout(self) -> bool:
        return any(f.document for f in self.stdout_formats)

    @classmethod
    def parse(cls, formats: list[str], outputs: list[str], fail_on: str, timings: bool, *,
              output_format: str = "full", statistics: bool = False, quiet: bool = False,
              pairs: int = 1) -> "ReportPlan":
        from alignguard.errors import UsageError
        from alignguard.report.formats import get_format, parse_output
        from alignguard.report.options import RenderOptions
        from alignguard.results import FAIL_ON_CHOICES

        if fail_on not in FAIL_ON_CHOICES:
            raise UsageError(f"--fail-on must be 'error' or 'warning', not '{fail_on}'", fix="use --fail-on warning")
        if output_format not in ("full", "concise"):
            raise UsageError(f"--output-format must be 'full' or 'concise', not '{output_format}'",
                             fix="use --output-format concise for one line per finding")
        stdout_formats = list(dict.fromkeys(get_format(name) for name in (formats or ["text"])))
        documents = [f.name for f in stdout_formats if f.document]
        if len(documents) > 1 or (documents and len(stdout_formats) > 1):
            raise UsageError(
                f"--format {' and '.join(f.name for f in stdout_formats)} would mix a whole document "
                f"({documents[0]}) with other output on standard output",
                fix=f"write it to a file instead: --output {documents[0]}:FILE",
            )
        files = [parse_output(value) for value in outputs]
        paths = [path.resolve() for _, path in files]
        duplicate = next((p for p in paths if paths.count(p) > 1), None)
        if duplicate:
            raise UsageError(f"two --output options write to '{duplicate}'", fix="give each report its own file")
        if pairs > 1:
            single = [f.name for f in [*stdout_formats, *(f for f, _ in files)] if f.name == "json"]
            if single:
                raise UsageError(f"the json format holds one report, and this run checks {pairs} pairs",
                                 fix="use sarif or junit (they hold several), or check one pair: "
                                 "alignguard check SPEC MODEL --format json")
        return cls(stdout_formats, files, RenderOptions(fail_on=fail_on, timings=timings),  # type: ignore[arg-type]
                   output_format=output_format, statistics=statistics, quiet=quiet)

    def load_renderers(self) -> None:
        """Import the renderers `emit_all` will call, so that none is imported after the verdict arrives."""
        for fmt in [*self.stdout_formats, *(fmt for fmt, _ in self.files)]:
            fmt.module()
        if any(fmt.name == "text" for fmt in self.stdout_formats):
            import rich.console  # noqa: F401

            from alignguard.report import concise, console  # noqa: F401

    def emit(self, report, console_text: bool = True) -> None:
        self.emit_all([report], console_text=console_text)

    def emit_all(self, reports: list, console_text: bool = True) -> None:
        from alignguard.errors import UsageError
        from alignguard.report.github import write_step_summary

        for fmt in self.stdout_formats:
            if fmt.name == "text":
                if console_text:  # on a load error the paragraph on stderr says it all
                    self._text(reports)
            else:
                typer.echo(fmt.render_many(reports, self.options), nl=False)
        if self.statistics and console_text:
            self._statistics(reports)
        for fmt, path in self.files:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(fmt.render_many(reports, self.options), encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write the {fmt.name} report to '{path}': {exc.strerror or exc}",
                                 fix="choose a writable path for --output") from None
        if any(fmt.name == "github" for fmt in self.stdout_formats):
            for report in reports:
                try:
                    write_step_summary(report, self.options)
                except OSError as exc:
                    raise UsageError(f"cannot append the job summary to $GITHUB_STEP_SUMMARY "
                                     f"('{exc.filename}'): {exc.strerror or exc}",
                                     fix="point GITHUB_STEP_SUMMARY at a writable file, or unset it outside "
                                     "GitHub Actions") from None

    def _text(self, reports: list) -> None:
        from rich.console import Console

        from alignguard.report.concise import render_lines, shown
        from alignguard.report.console import render_console

        fail_on = self.options.fail_on
        for report in reports:
            if self.quiet:  # the findings alone; an aligned run prints nothing
                lines = render_lines(report, fail_on)
                keep = lines if report.exit_code(fail_on) != 0 else lines[:-1] if shown(report) else []
                for line in keep:
                    typer.echo(line)
            elif self.output_format == "concise":
                for line in render_lines(report, fail_on):
                    typer.echo(line)
            else:
                console = Console(soft_wrap=not sys.stdout.isatty())  # CI logs: no hard wraps
                render_console(report, console, fail_on=fail_on, timings=self.options.timings)

    def _statistics(self, reports: list) -> None:
        from alignguard.report.concise import statistics
        from alignguard.results import Report

        merged = Report(spec_name="", spec_path="", model_path="", results=[r for rep in reports for r in rep.results])
        out = sys.stderr if self.document_on_stdout else sys.stdout  # never inside a JSON/SARIF document
        for line in statistics(merged, self.options.fail_on):
            print(line, file=out)
