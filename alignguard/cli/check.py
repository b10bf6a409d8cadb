"""`alignguard check SPEC MODEL`: exit 0 aligned, 1 misaligned, 2 could not judge.

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
from alignguard.cli.heap import import_torch_and_freeze_heap

FORMAT_HELP = "Report on standard output, repeatable: text|json|junit|sarif|github|markdown. Default: text."
CHECK_TIMEOUT_S = 600.0  # a check takes seconds; ten minutes means a hang, not a large model
OUTPUT_HELP = ("Also write a report to FILE, repeatable. FORMAT is one of the --format names; without it the "
               "extension decides (.json .sarif .xml .md .txt).")


@reports_errors
def check_command(
    spec: Path = typer.Argument(..., help="Design spec (YAML)."),
    model: Path = typer.Argument(..., help="Model file defining build_model, example_batch, loss_terms."),
    formats: Optional[List[str]] = typer.Option(None, "--format", "-f", metavar="FORMAT", help=FORMAT_HELP),
    outputs: Optional[List[str]] = typer.Option(None, "--output", "-o", metavar="[FORMAT:]FILE", help=OUTPUT_HELP),
    fail_on: str = typer.Option("error", "--fail-on", help="Lowest severity that fails the check: error|warning."),
    timings: bool = typer.Option(False, "--timings", help="Show the time spent in each phase."),
    timeout: float = typer.Option(CHECK_TIMEOUT_S, "--timeout", min=0, metavar="SECONDS",
                                  help="Stop a check still running after this long (exit 2, naming where it "
                                  "hung); 0: no limit."),
) -> None:
    """Check that MODEL implements the design in SPEC."""
    from alignguard.api import run_check
    from alignguard.errors import AlignguardError
    from alignguard.isolation import run_isolated
    from alignguard.results import Report

    plan = ReportPlan.parse(formats or [], outputs or [], fail_on, timings)
    refuse_overwriting_inputs([path for _, path in plan.files], [spec, model], "--output")
    start = time.perf_counter()
    import_torch_and_freeze_heap()
    torch_imported = time.perf_counter()
    try:
        # the model file runs in a worker: its exits, prints and hangs cannot stand in for a verdict
        report = run_isolated(run_check, spec, model, spec_path=str(spec), timeout=timeout or None,
                              stdout_to_stderr=True)
    except AlignguardError as error:
        plan.emit(Report.failed_run(error, str(spec), str(model)), console_text=False)
        raise  # reports_errors prints the paragraph and exits with the error's code
    # phases nest (a check family includes the capture it triggered), so the wall time is its own row
    report.timings["total"] = time.perf_counter() - start
    report.timings["import torch"] = torch_imported - start
    plan.emit(report)
    raise typer.Exit(int(report.exit_code(plan.options.fail_on)))


class ReportPlan:
    """Which formats go to standard output and which to files, checked before the run starts."""

    def __init__(self, stdout_formats, files, options) -> None:
        self.stdout_formats = stdout_formats
        self.files = files
        self.options = options

    @classmethod
    def parse(cls, formats: list[str], outputs: list[str], fail_on: str, timings: bool) -> "ReportPlan":
        from alignguard.errors import UsageError
        from alignguard.report.formats import get_format, parse_output
        from alignguard.report.options import RenderOptions
        from alignguard.results import FAIL_ON_CHOICES

        if fail_on not in FAIL_ON_CHOICES:
            raise UsageError(f"--fail-on must be 'error' or 'warning', not '{fail_on}'", fix="use --fail-on warning")
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
        return cls(stdout_formats, files, RenderOptions(fail_on=fail_on, timings=timings))  # type: ignore[arg-type]

    def emit(self, report, console_text: bool = True) -> None:
        from rich.console import Console

        from alignguard.errors import UsageError
        from alignguard.report.console import render_console
        from alignguard.report.github import write_step_summary

        for fmt in self.stdout_formats:
            if fmt.name == "text":
                if console_text:  # on a load error the paragraph on stderr says it all
                    console = Console(soft_wrap=not sys.stdout.isatty())  # CI logs: no hard wraps
                    render_console(report, console, fail_on=self.options.fail_on, timings=self.options.timings)
            else:
                typer.echo(fmt.render(report, self.options), nl=False)
        for fmt, path in self.files:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(fmt.render(report, self.options), encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write the {fmt.name} report to '{path}': {exc.strerror or exc}",
                                 fix="choose a writable path for --output") from None
        if any(fmt.name == "github" for fmt in self.stdout_formats):
            try:
                write_step_summary(report, self.options)
            except OSError as exc:
                raise UsageError(f"cannot append the job summary to $GITHUB_STEP_SUMMARY "
                                 f"('{exc.filename}'): {exc.strerror or exc}",
                                 fix="point GITHUB_STEP_SUMMARY at a writable file, or unset it outside "
                                 "GitHub Actions") from None
