"""How a report is rendered: the options every format needs besides the report itself."""

from __future__ import annotations

from dataclasses import dataclass

from alignguard.results import FailOn


@dataclass(frozen=True)
class RenderOptions:
    """What every format needs besides the report."""

    fail_on: FailOn = "error"
    timings: bool = False
