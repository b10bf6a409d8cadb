"""Project configuration: the `[tool.alignguard]` table of the nearest pyproject.toml.

    [tool.alignguard]
    format = ["text"]        # what `alignguard check` prints when no --format is given
    fail-on = "error"        # error | warning
    timeout = 600            # seconds a check may run
    output-format = "full"   # full | concise

    [[tool.alignguard.pairs]]
    spec = "specs/cmdn.yaml"
    model = "models/cmdn.py"

The file is looked for from the working directory upward; the first pyproject.toml holding a
`[tool.alignguard]` table wins, and paths in it are relative to that file's folder. Precedence:
an option given on the command line, else the table, else the built-in default.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal, Optional

from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from alignguard.errors import UsageError
from alignguard.strict import StrictModel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FILE_NAME = "pyproject.toml"


class Pair(StrictModel):
    """One design spec and the model file that must implement it."""

    model_config = ConfigDict(frozen=True)

    spec: Path = Field(description="Design spec, relative to the pyproject.toml's folder.")
    model: Path = Field(description="Model file, relative to the pyproject.toml's folder.")
    name: Optional[str] = Field(None, description="Name shown for this pair (default: the spec's file stem).")

    @property
    def label(self) -> str:
        return self.name or self.spec.stem


class ProjectConfig(StrictModel):
    """The `[tool.alignguard]` table. Every key is optional."""

    model_config = ConfigDict(frozen=True)  # keys as written in TOML (fail-on)

    pairs: list[Pair] = Field(default_factory=list, description="Spec/model pairs `alignguard check` runs.")
    format: Optional[list[str]] = Field(None, description="Default --format (a name or a list of names).")
    fail_on: Optional[Literal["error", "warning"]] = Field(None, alias="fail-on", description="Default --fail-on.")
    timeout: Optional[float] = Field(None, ge=0, description="Default --timeout in seconds (0: no limit).")
    output_format: Optional[Literal["full", "concise"]] = Field(
        None, alias="output-format", description="Default --output-format.")
    _path: Optional[Path] = PrivateAttr(None)  # the pyproject.toml this came from

    @field_validator("format", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def root(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    def resolved_pairs(self) -> list[Pair]:
        """The pairs with paths made absolute against the pyproject.toml's folder."""
        return [Pair(spec=self.root / p.spec, model=self.root / p.model, name=p.label) for p in self.pairs]


def find_config_file(start: Path | None = None) -> Path | None:
    """The first pyproject.toml with a [tool.alignguard] table, from `start` (default: cwd) upward."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / FILE_NAME
        if path.is_file() and _has_table(path):
            return path
    return None


def load_config(start: Path | None = None) -> ProjectConfig:
    """The discovered configuration, or an empty one (every value at its default) when there is none."""
    path = find_config_file(start)
    if path is None:
        return ProjectConfig()
    return read_config(path)


def read_config(path: Path) -> ProjectConfig:
    text = path.read_text(encoding="utf-8")
    try:
        table = tomllib.loads(text).get("tool", {}).get("alignguard", {})
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}", where=str(path),
                         fix="fix the TOML syntax (a quote or bracket is usually missing)") from None
    try:
        config = ProjectConfig.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        known = ", ".join(sorted(f.alias or name for name, f in ProjectConfig.model_fields.items()))
        fix = (f"known keys: {known}" if error["type"] == "extra_forbidden"
               else "see docs/ci.md, 'Project configuration', for every key and its type")
        raise UsageError(f"[tool.alignguard] {key}: {error['msg']}",
                         where=f"{path}:{_line_of(text, str(error['loc'][0]))}", fix=fix) from None
    config._path = path
    return config


def _has_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^\s*\[\[?\s*tool\.alignguard(\.|\s*\])", text, re.M) is not None


def _line_of(text: str, key: str) -> int:
    """The line of `key` inside the [tool.alignguard] table (its header line when not found)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\s*\[\[?\s*tool\.alignguard", line)), 0)
    pattern = re.compile(rf"^\s*\[*\s*(tool\.alignguard\.)?{re.escape(key)}\b")
    for index in range(start, len(lines)):
        if pattern.match(lines[index]):
            return index + 1
    return start + 1
