"""`alignguard evaluate --format json`: the evaluation as one JSON document on standard output, the
same document `evaluate` writes to RUN_DIR/evaluation.json (the text format is the trainer's tables)."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("text", "json")


def render_json(result: dict[str, Any]) -> str:
    """`result` is JSON-safe already (NaN/inf as null); strict JSON either way."""
    return json.dumps(result, indent=1, allow_nan=False) + "\n"
