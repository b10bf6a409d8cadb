"""The `json` format: one document per run, versioned by `schema_version`.

The schema is shipped next to this module (report-schema-v1.json, JSON Schema 2020-12) and
documented in docs/ci.md. Within one schema version fields are only ever added (optional);
renaming or removing a field bumps the version.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from alignguard import __version__
from alignguard.report.anchors import Locator, fingerprints
from alignguard.report.options import RenderOptions
from alignguard.results import Report

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report-schema-v1.json")


def to_dict(report: Report, options: RenderOptions) -> dict[str, Any]:
    locator = Locator(report.spec_path, report.model_path)
    prints = fingerprints(report.results, locator)
    results = []
    for result, fingerprint in zip(report.results, prints):
        anchor = locator.anchor(result)
        where = result.where
        results.append({
            "check_id": result.check_id,
            "element": result.element,
            "status": result.status.value,
            "severity": result.severity,
            "counts_against": report.counts_against(result, options.fail_on),
            "expected": result.expected,
            "found": result.found,
            "where": {"module": where.module, "node": where.node, "file": where.file, "line": where.line},
            "anchor": {"file": anchor.file, "line": anchor.line},
            "fix": result.fix,
            "note": result.note,
            "details": plain(result.details),
            "fingerprint": fingerprint,
        })
    error = report.error
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "alignguard", "version": __version__},
        "spec": {"name": report.spec_name, "path": report.spec_path},
        "model": {"path": report.model_path},
        "capture": {"mode": report.capture, "note": report.capture_note},
        "fail_on": options.fail_on,
        "exit_code": int(report.exit_code(options.fail_on)),
        "verdict": report.verdict(options.fail_on),
        "counts": {**report.counts(), "warning": len(report.warnings(options.fail_on))},
        "timings": {phase: round(seconds, 6) for phase, seconds in report.timings.items()},
        "error": None if error is None else {
            "kind": error.kind, "what": error.what, "where": error.where, "fix": error.fix,
        },
        "results": results,
    }


def plain(value: Any) -> Any:
    """Details as JSON values: numpy/torch values via tolist(), tuples/sets as lists, non-finite
    floats as strings (JSON has no NaN), anything else as its str()."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    return str(value)


def render(report: Report, options: RenderOptions) -> str:
    return json.dumps(to_dict(report, options), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
