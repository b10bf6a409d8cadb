"""What every check is: stable ids, an `applies(spec)` test, a `run(context)` that yields results.

A check lives in the room of the evidence it rests on (structure/, gradients/, probes/) and is
listed in `checks/catalogue.py`, which fixes the report order. A check whose selector matches
nothing must yield a FAIL ("matched nothing"), never silently nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext
    from alignguard.results import CheckResult
    from alignguard.spec.model import Spec


class Check:
    ids: ClassVar[tuple[str, ...]] = ()
    explanations: ClassVar[dict[str, str]] = {}  # check id -> what it proves and how to fix failures

    def applies(self, spec: "Spec") -> bool:
        return True

    def run(self, context: "CheckContext") -> Iterable["CheckResult"]:
        raise NotImplementedError
