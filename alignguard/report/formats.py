"""The report formats, by name, and how `--format` / `--output [FORMAT:]FILE` pick one.

Each format is a module of this package with `render(report, options) -> str`; it is imported
only when used. A *document* format (json, junit, sarif) is one whole file, so at most one of
them can go to standard output; the others are line-oriented and can be combined there
(e.g. `--format text --format github`).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path

from alignguard.errors import UsageError
from alignguard.report.options import RenderOptions
from alignguard.results import Report


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    suffixes: tuple[str, ...]  # file suffixes that select it for --output FILE
    document: bool

    def render(self, report: Report, options: RenderOptions) -> str:
        return self.module().render(report, options)

    def render_many(self, reports: list[Report], options: RenderOptions) -> str:
        """Several reports (one per spec/model pair) as one output: SARIF runs and JUnit suites
        merge, GitHub annotations share one cap, line formats follow one another."""
        if len(reports) == 1:
            return self.render(reports[0], options)
        module = self.module()
        if hasattr(module, "render_many"):
            return module.render_many(reports, options)
        if self.document:
            raise UsageError(f"the {self.name} format holds one report, and this run checks {len(reports)} pairs",
                             fix="use sarif or junit (they hold several), or check one pair: alignguard check SPEC MODEL")
        return "\n".join(self.render(report, options) for report in reports)

    def module(self):
        """The renderer module (imported on first use)."""
        return importlib.import_module(f"alignguard.report.{_MODULES.get(self.name, self.name)}")


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("text", "the console report (colour on a terminal)", (".txt", ".log"), False),
        Format("json", "versioned JSON document (schema: alignguard/report/report-schema-v1.json)",
               (".json",), True),
        Format("junit", "JUnit XML, one testcase per check result", (".xml", ".junit"), True),
        Format("sarif", "SARIF 2.1.0 for GitHub code scanning", (".sarif", ".sarif.json"), True),
        Format("github", "GitHub Actions workflow commands (::error file=...,line=...::)", (), False),
        Format("markdown", "Markdown summary (pull-request comment, step summary)", (".md", ".markdown"), False),
        Format("concise", "one line per finding, FILE:LINE:COL: CHECK_ID [element] ... (ruff style)", (), False),
    )
}
_MODULES = {"text": "console"}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name.lower()]
    except KeyError:
        guess = difflib.get_close_matches(name.lower(), FORMATS, n=1)
        raise UsageError(
            f"unknown report format '{name}'",
            fix=(f"did you mean '{guess[0]}'? " if guess else "") + f"formats: {', '.join(FORMATS)}",
        ) from None


def format_for_path(path: str) -> Format:
    lowered = path.lower()
    # longest suffix first, so report.sarif.json is SARIF, not plain JSON
    for suffix, fmt in sorted(((s, f) for f in FORMATS.values() for s in f.suffixes), key=lambda p: -len(p[0])):
        if lowered.endswith(suffix):
            return fmt
    raise UsageError(
        f"cannot tell the report format of '{path}' from its extension",
        fix=f"name it FORMAT:{path}, e.g. --output sarif:{path} (formats: {', '.join(FORMATS)})",
    )


def parse_output(value: str) -> tuple[Format, Path]:
    """`sarif:report.sarif` or `report.sarif` (format from the suffix) -> (format, path)."""
    prefix, sep, rest = value.partition(":")
    if sep and prefix.lower() in FORMATS:
        if not rest:
            raise UsageError(f"--output {value} names no file", fix=f"write --output {prefix}:FILE")
        return FORMATS[prefix.lower()], Path(rest)
    if sep and len(prefix) > 1 and prefix.isalnum():  # not a drive letter (C:) nor a folder
        get_format(prefix)  # raises with a did-you-mean for a misspelled prefix
    return format_for_path(value), Path(value)
