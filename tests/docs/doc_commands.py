"""Collects the command lines of the docs' fenced bash blocks and runs them in a scratch workspace.

A documented command is a line in a ```bash (or sh/shell) block that starts with `alignguard `,
`python -m alignguard` or `python benchmarks/` (trailing backslashes continue it). Its trailing
comment may say what to expect:

    alignguard check specs/cmdn.yaml models/legacy_energy.py   # exit 1
    alignguard data convert --genome hg19.fa ...                # not run: needs the ENCODE-DREAM files

`exit N` in the comment sets the expected exit code (default 0), e.g. `# aligned: exit 0`;
`# not run: REASON` skips the line, with the reason shown. The commands of one document run in
order, through bash with pipefail, in a temp folder holding copies of the repository's specs/,
models/, benchmarks/ and docs/, so a later command can use what an earlier one wrote
(`alignguard evaluate runs/latest` after a train).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell"}
COMMAND_STARTS = ("alignguard ", "python -m alignguard", "python benchmarks/")
SLOW_SUBCOMMANDS = {"train", "evaluate", "mutate"}  # evaluate needs a trained run
WORKSPACE_FOLDERS = ("specs", "models", "benchmarks", "docs")  # docs/tutorial/ holds the tutorial's models
WORKSPACE_FILES = ("pyproject.toml",)  # its [tool.alignguard] pairs, for `alignguard check` with no arguments
EXIT_COMMENT = re.compile(r"\bexit\s+(\d+)\b")
NOT_RUN_COMMENT = re.compile(r"^not run:\s*(.*)$")


@dataclass(frozen=True)
class DocCommand:
    doc: str  # path relative to the repository
    line: int  # first line of the command
    command: str
    expected: int = 0
    skip_reason: str | None = None

    @property
    def slow(self) -> bool:
        words = self.command.split()
        if words[:2] == ["python", "-m"] and words[2:3] == ["alignguard"]:
            words = words[2:]
        return self.command.startswith("python benchmarks/") or (len(words) > 1 and words[1] in SLOW_SUBCOMMANDS)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.command}"


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) at the first `#` that starts a shell comment: outside quotes, after a blank."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def parse_commands(text: str, doc: str) -> list[DocCommand]:
    commands: list[DocCommand] = []
    language, pending, start = None, "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            language = None if language is not None else (stripped[3:].strip().split() or [""])[0]
            pending = ""
            continue
        if language not in SHELL_LANGUAGES:
            continue
        code, comment = split_comment(stripped)
        if not pending:
            start = number
        if code.endswith("\\"):
            pending += code[:-1].strip() + " "
            continue
        command, pending = (pending + code).strip(), ""
        if not command.startswith(COMMAND_STARTS):
            continue
        expected, skip = 0, None
        if match := EXIT_COMMENT.search(comment):
            expected = int(match.group(1))
        if match := NOT_RUN_COMMENT.match(comment):
            skip = match.group(1).strip() or "no reason given"
        commands.append(DocCommand(doc, start, command, expected, skip))
    return commands


def doc_commands(path: Path) -> list[DocCommand]:
    return parse_commands(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def make_workspace(folder: Path) -> Path:
    for name in WORKSPACE_FOLDERS:
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in WORKSPACE_FILES:
        shutil.copy(ROOT / name, folder / name)
    return folder


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("COLUMNS", "100")
    return env


def run_command(command: DocCommand, workspace: Path, timeout: float) -> str | None:
    """None when the command exits as documented, else a paragraph saying what happened."""
    try:
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command.command], cwd=workspace,
                                env=environment(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"{command}\n  did not finish within {timeout:.0f} s"
    if result.returncode == command.expected:
        return None
    tail = "\n".join(("    " + line) for line in (result.stdout + result.stderr).strip().splitlines()[-25:])
    return (f"{command}\n  exit {result.returncode}, the doc expects {command.expected} "
            f"(add `# exit N` to the line if that code is intended)\n{tail}")
