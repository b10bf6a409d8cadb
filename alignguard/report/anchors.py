"""Where a finding points in the repository, and a fingerprint that survives edits.

Annotations (GitHub, SARIF, JUnit) need a file and a line. A finding that knows its source
line (from the captured graph) points there; one that does not (a missing module, a loss with
no gradient) points at the design element's line in the spec, which is where a reader decides
whether the model or the spec is wrong. Paths are made relative to the repository root (the git
top level, else the working directory), as GitHub and code scanning expect, so a check run from a
subfolder still points at the right file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignguard.checks.base import CheckResult

# The first word of a result's element -> the spec section that defines it.
_SECTIONS = {
    "input": "inputs", "symbol": "symbols", "component": "components", "loss": "losses",
    "formula": "formulas", "pattern": "forbidden_patterns", "forbidden_pattern": "forbidden_patterns",
    "flow": "flow", "path": "flow", "probe": "probes", "waiver": "waivers", "gradients": "gradients",
    "gradient": "gradients", "params": "gradients", "parameter": "gradients", "losses": "losses",
}
_WHERE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<column>\d+))?$")


@dataclass(frozen=True)
class Anchor:
    file: str  # relative to the working directory when inside it, else absolute
    line: int
    column: int | None = None


def source_root(start: Path | None = None) -> Path:
    """The git top level above `start` (default: the working directory), else `start` itself.

    Found by the `.git` entry (a folder, or a file in a worktree or submodule), without running git."""
    return _root_of(str((start or Path.cwd()).resolve()))


@functools.lru_cache(maxsize=8)
def _root_of(start: str) -> Path:
    here = Path(start)
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def relative(path: str | os.PathLike) -> str:
    """`path` relative to the repository root (POSIX separators) when it lies inside it."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(source_root()).as_posix()
    except ValueError:
        return resolved.as_posix()


def parse_where(where: str | None) -> Anchor | None:
    """An error's `where` ("file:line[:col]") as an anchor, if it names an existing file."""
    if not where:
        return None
    match = _WHERE.match(where.strip())
    if match and Path(match["file"]).is_file():
        column = int(match["column"]) if match["column"] else None
        return Anchor(relative(match["file"]), int(match["line"]), column)
    if Path(where).is_file():
        return Anchor(relative(where), 1)
    return None


class Locator:
    """Anchors for the results of one report (reads the spec once for element lines)."""

    def __init__(self, spec_path: str, model_path: str) -> None:
        self.spec_path = spec_path
        self.model_path = model_path
        self._spec: Any = _read_yaml(spec_path)

    def anchor(self, result: CheckResult) -> Anchor:
        where = result.where
        if where.file and Path(where.file).is_file():
            return Anchor(relative(where.file), where.line or 1)
        if self._spec is not None:
            return Anchor(relative(self.spec_path), self.spec_line(result.element))
        if Path(self.model_path).is_file():
            return Anchor(relative(self.model_path), 1)
        return Anchor(self.spec_path, 1)

    def spec_line(self, element: str) -> int:
        """1-based line of the design element in the spec (the section, or 1, when not found)."""
        data = self._spec
        kind, _, name = element.partition(" ")
        section_key = _SECTIONS.get(kind, kind)
        if not isinstance(data, dict) or not hasattr(data, "lc") or section_key not in data:
            return 1
        section = data[section_key]
        line = data.lc.key(section_key)[0] + 1
        found = _find_in(section, name, element)
        return found if found is not None else line


def _find_in(node: Any, name: str, element: str) -> int | None:
    """Line of the entry of a section that the element names (a key, or a list item whose values
    appear in the element, e.g. the waiver `params.dead loss kl`)."""
    if isinstance(node, dict) and hasattr(node, "lc"):
        first = name.split()[0] if name.split() else ""
        for key in (name, first):
            if key in node:
                return node.lc.key(key)[0] + 1
        for key, value in node.items():
            inner = _find_in(value, name, element)
            if inner is not None:
                return inner
    if isinstance(node, list) and hasattr(node, "lc"):
        for index, item in enumerate(node):
            values = _scalars(item)
            if values and all(str(v) in element for v in values[:2]):
                return node.lc.item(index)[0] + 1
    return None


def _scalars(item: Any) -> list[Any]:
    if isinstance(item, dict):
        return [v for v in item.values() if isinstance(v, (str, int, float)) and str(v)]
    return [item] if isinstance(item, (str, int, float)) else []


def _read_yaml(path: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except (OSError, YAMLError, UnicodeDecodeError):
        return None


def fingerprints(results: list[CheckResult], locator: Locator) -> list[str]:
    """One stable id per result: a hash of check id, element, module and file (never the line
    or graph node, which drift with unrelated edits), plus an occurrence count so that two
    findings of one check on one element stay distinct."""
    seen: dict[str, int] = {}
    out = []
    for result in results:
        anchor_file = locator.anchor(result).file
        key = "\0".join((result.check_id, result.element, result.where.module or "", anchor_file))
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        seen[digest] = seen.get(digest, 0) + 1
        out.append(f"{digest}:{seen[digest]}")
    return out
