"""Read small YAML documents without letting a hostile or broken file take the CI runner down.

A design spec or training config is a page or two of YAML. Reading stops at MAX_BYTES, parsing
at MAX_DEPTH levels of nesting, and a document whose aliases would expand to more than MAX_NODES
values is refused before pydantic (or an error message) walks it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alignguard.errors import AlignguardError

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000
_FLOW_TOKENS = re.compile(r"""[\[\]{}]|"(?:\\.|[^"\\])*"|'(?:''|[^'])*'|#[^\n]*""")


def read_text_file(path: Path, what: str, error: type[AlignguardError], limit: int = MAX_BYTES) -> str:
    """A small UTF-8 text file, or `error` saying which limit or byte was wrong (and where)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} file: {exc.strerror or exc}", where=str(path),
                    fix="check the path and its permissions") from None
    if len(raw) > limit:
        raise error(f"the {what} file is larger than the {limit // 1024} KiB limit", where=str(path),
                    fix=f"a {what} file is a page or two of YAML: check that this is the right file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"the {what} file is UTF-16 encoded", where=f"{path}:1:1",
                    fix="save it as UTF-8 (most editors: 'Save with encoding')")
    if b"\x00" in raw:  # before decoding: a binary file is not "badly encoded text"
        offset = raw.index(b"\x00")
        line, column = raw.count(b"\n", 0, offset) + 1, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise error(f"the {what} file contains a NUL byte, so it is binary, not YAML text",
                    where=f"{path}:{line}:{column}", fix=f"pass the YAML {what} file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(f"the {what} file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                    where=f"{path}:{line}:{column}", fix="save it as UTF-8 text") from None
    return text


def check_size(data: Any, source: str, error: type[AlignguardError]) -> None:
    """Count values as a reader would see them, aliases expanded, stopping at the first limit crossed."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise error(f"the document expands to more than {MAX_NODES:,} values (the limit); YAML aliases "
                            "(*name) that repeat anchors (&name) multiply it", where=source,
                            fix="write the document without nested aliases; specs and configs need a few hundred values")
        if depth > MAX_DEPTH:
            raise error(f"the document nests deeper than {MAX_DEPTH} levels (the limit)", where=source,
                            fix="they nest a few levels; look for runaway [ or { brackets")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
            stack.extend((key, depth + 1) for key in node if not isinstance(key, (str, int, float, bool)))
        elif isinstance(node, (list, tuple)):
            stack.extend((value, depth + 1) for value in node)


def check_flow_depth(text: str, source: str, error: type[AlignguardError]) -> None:
    """Refuse runaway [ / { nesting before the YAML parser (slow and recursive on it) sees the text."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _FLOW_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise error(f"the document nests deeper than {MAX_DEPTH} levels (the limit)",
                            where=f"{source}:{line}:{column}",
                            fix="they nest a few levels; look for runaway [ or { brackets")
        elif token in "]}":
            depth = max(0, depth - 1)
