"""Where a finding points in the repository, and a fingerprint that survives edits.

Annotations (GitHub, SARIF, JUnit) need a file and a line. A finding that knows its source
line (from the captured graph) points there; one that does not (a missing module, a loss with
no gradient) points at the design element's line in the spec (`CheckResult.spec_line`, which the
loader recorded), which is where a reader decides whether the model or the spec is wrong. Paths
are made relative to the repository root (the git top level, else the working directory), as
GitHub and code scanning expect, so a check run from a subfolder still points at the right file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alignguard.results import CheckResult

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
    """Anchors for the results of one report."""

    def __init__(self, spec_path: str, model_path: str) -> None:
        self.spec_path = spec_path
        self.model_path = model_path
        self._spec_is_file = Path(spec_path).is_file()

    def anchor(self, result: CheckResult) -> Anchor:
        where = result.where
        if where.file and Path(where.file).is_file():
            return Anchor(relative(where.file), where.line or 1)
        if self._spec_is_file:
            return Anchor(relative(self.spec_path), result.spec_line or 1)
        if Path(self.model_path).is_file():
            return Anchor(relative(self.model_path), 1)
        return Anchor(self.spec_path, 1)


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
