"""What every check shares: its result type, its base class and the registry.

A check is a class with stable ids (e.g. `component.called`), an `applies(spec)` test and a
`run(context)` that yields `CheckResult`s. Each check module registers its classes with
`@register`; the registry imports every module in this package, so adding a check is adding
a file. A check whose selector matches nothing must yield a FAIL ("matched nothing"), never
silently nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext
    from alignguard.spec.model import Spec


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    WAIVED = "waived"
    ERROR = "error"  # the check itself could not run: a tool or model error, not a finding


@dataclass(frozen=True)
class Where:
    module: str | None = None  # dotted module path
    node: str | None = None  # graph node id
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.module:
            parts.append(f"module {self.module}")
        if self.node:
            parts.append(f"node {self.node}")
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        return ", ".join(parts)


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    element: str  # the design element it judges, e.g. "component bottleneck", "loss kl"
    status: Status
    expected: str
    found: str
    where: Where = field(default_factory=Where)
    fix: str = ""
    severity: str = "error"
    details: dict[str, Any] = field(default_factory=dict)  # tables, numbers for machine-readable reports
    note: str = ""  # e.g. the waiver's reason

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def with_(self, **changes: Any) -> "CheckResult":
        return replace(self, **changes)


def passed(check_id: str, element: str, expected: str, found: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, element, Status.PASS, expected, found, **kw)


def failed(check_id: str, element: str, expected: str, found: str, fix: str, **kw: Any) -> CheckResult:
    return CheckResult(check_id, element, Status.FAIL, expected, found, fix=fix, **kw)


class Check:
    ids: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 100  # report order: structure (10s) before gradients (50s) before probes (70s)
    explanations: ClassVar[dict[str, str]] = {}  # check id -> what it proves and how to fix failures

    def applies(self, spec: "Spec") -> bool:
        return True

    def run(self, context: "CheckContext") -> Iterable[CheckResult]:
        raise NotImplementedError


_REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    for check_id in cls.ids:
        if check_id in _REGISTRY and _REGISTRY[check_id] is not cls:
            raise RuntimeError(f"check id {check_id} registered twice")
        _REGISTRY[check_id] = cls
    return cls


def registered_checks() -> list[type[Check]]:
    """Every check class, in report order (imports each module of this package once)."""
    import alignguard.checks as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in {"base", "context"} and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    unique = {cls: None for cls in _REGISTRY.values()}
    return sorted(unique, key=lambda cls: (cls.order, cls.ids[0]))


def explanation(check_id: str) -> str | None:
    registered_checks()
    cls = _REGISTRY.get(check_id)
    return cls.explanations.get(check_id) if cls else None


def all_check_ids() -> list[str]:
    return [check_id for cls in registered_checks() for check_id in cls.ids]
