"""Load a spec file: YAML with line numbers (ruamel.yaml), validated by the pydantic models.

Every problem becomes one `SpecError` paragraph naming the file, line and column, what was
wrong and how to fix it (with a "did you mean" for misspelled keys).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

from alignguard.errors import SpecError
from alignguard.spec.bounded import MAX_BYTES, MAX_DEPTH, check_flow_depth, check_size, read_text_file
from alignguard.spec.model import Spec, SpecReferenceError
from alignguard.spec.positions import yaml_columns, yaml_lines

Loc = tuple[str | int, ...]


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"'{path}' is a directory, not a spec file",
                        fix="pass the path to the YAML design spec inside it, e.g. specs/cmdn.yaml")
    if not path.is_file():
        raise SpecError(
            f"spec file '{path}' does not exist",
            fix="pass the path to a YAML design spec, e.g. specs/cmdn.yaml",
        )
    text = read_text_file(path, "spec", SpecError)
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    if len(text) > MAX_BYTES:
        raise SpecError(f"the spec is longer than the {MAX_BYTES // 1024} KiB limit", where=source,
                        fix="a spec is a page or two of YAML: check that this is the right text")
    check_flow_depth(text, source, SpecError)
    data = _read_yaml(text, source)
    check_size(data, source, SpecError)
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"the spec must be a YAML mapping of keys such as `version`, `name`, `inputs`, but it is {found}",
            where=f"{source}:1:1",
            fix="start the file with `version: 1` and `name: ...` (run `alignguard schema` for every key)",
        )
    return validate_spec(data, source)


def validate_spec(data: Any, source: str = "<dict>") -> Spec:
    """Validate already-parsed data (YAML with positions, or a plain dict from Python)."""
    if not isinstance(data, dict):
        raise SpecError(f"a spec is a mapping of keys such as `version`, `name`, `inputs`, not a {type(data).__name__}",
                        where=source, fix="pass a dict (or a Spec, or a YAML file path)")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, data, source) from None
    spec._lines = yaml_lines(data)  # so results can point at the entry they judge
    spec._columns, spec._source = yaml_columns(data), source  # and check-time spec errors at file:line:col
    return spec


class _Constructor(RoundTripConstructor):
    """Values YAML can spell but Python cannot hold (2024-13-45, a 10,000-digit int, a mapping used as
    a key) as marked errors."""

    def construct_mapping(self, node: Any, maptyp: Any, deep: bool = False) -> Any:
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):  # `? x:` makes a mapping the key: unhashable, a TypeError
                raise ConstructorError(None, None, "a key is a mapping or a list (YAML's '? ' complex key); a spec's "
                                       "keys are plain names", key_node.start_mark)
        return super().construct_mapping(node, maptyp, deep=deep)

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, f"value '{_clip(str(node.value))}' cannot be read: {exc}",
                                   node.start_mark) from None


def _read_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        if isinstance(exc, ConstructorError) and " cannot be read: " in str(exc.problem):
            raise SpecError(f"the spec's {exc.problem}", where=where,
                            fix="write a value that exists (dates as YYYY-MM-DD), or quote it to make it a string"
                            ) from None
        raise SpecError(
            f"the spec is not valid YAML: {exc.problem or exc.context}",
            where=where,
            fix="check indentation, colons and quoting at that line (quote strings containing ': ' or '#')",
        ) from None
    except YAMLError as exc:
        raise SpecError(f"the spec is not valid YAML: {exc}", where=source, fix="fix the YAML syntax") from None
    except RecursionError:
        raise SpecError(f"the spec nests deeper than the parser can follow (limit: {MAX_DEPTH} levels)",
                        where=source, fix="a spec nests a few levels; look for runaway [ or { brackets") from None


def _explain(exc: ValidationError, data: Any, source: str) -> SpecError:
    # A misspelled key also makes the intended key "missing": report the misspelling first.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc: Loc = tuple(first["loc"])
    kind = first["type"]
    context = first.get("ctx") or {}
    reference = context.get("error")
    if isinstance(reference, SpecReferenceError):
        loc = reference.loc
        what = str(reference)
        fix = "define the name (under `inputs`, `symbols` or `components`) or correct the spelling"
    elif kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(Spec, loc[:-1])
        guess = difflib.get_close_matches(key, allowed, n=1)
        what = f"unknown key '{key}' in {_dotted(loc[:-1]) or 'the top level'}"
        fix = f"did you mean '{guess[0]}'? " if guess else ""
        fix += f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        what = f"required key '{loc[-1]}' is missing in {_dotted(loc[:-1]) or 'the top level'}"
        fix = f"add `{loc[-1]}:` (see `alignguard schema`)"
    else:
        msg = first["msg"].removeprefix("Value error, ")
        what = f"{_dotted(loc) or 'the spec'}: {msg} (got {_short(first.get('input'))})"
        if loc and loc[-1] == "equation":
            fix = "write it as `symbol = expression` over spec symbols with + - * /, unary minus and named functions"
        elif loc and loc[-1] == "parts":
            fix = ("write each part as basic indexing of the input in brackets: integers, `:` slices and one `...`, "
                   "e.g. `descriptor: \"[:, :-1]\"`, `accessibility: \"[:, -1]\"`")
        else:
            fix = "correct the value (see `alignguard schema` for the expected type)"
    more = len(exc.errors()) - 1
    if more:
        fix += f"; {more} more problem{'s' if more > 1 else ''} may follow once this is fixed"
    if not hasattr(data, "lc"):  # a dict written in Python has no lines: name the key instead
        return SpecError(what, where=f"{source} at {_dotted(loc) or 'the top level'}", fix=fix)
    line, column = _position(data, loc)
    return SpecError(what, where=f"{source}:{line}:{column}", fix=fix)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value cut to `limit` characters, built piece by piece so a huge value is never rendered."""
    pieces: list[str] = []
    budget = [limit + 1]

    def emit(text: str) -> bool:
        pieces.append(text[: budget[0]])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if not emit("{"):
                return False
            for index, (key, item) in enumerate(node.items()):
                if (index and not emit(", ")) or not walk(key) or not emit(": ") or not walk(item):
                    return False
            return emit("}")
        if isinstance(node, (list, tuple)):
            if not emit("["):
                return False
            for index, item in enumerate(node):
                if (index and not emit(", ")) or not walk(item):
                    return False
            return emit("]")
        if isinstance(node, int) and node.bit_length() > 256:
            return emit(f"<an integer of {node.bit_length()} bits>")
        return emit(repr(_clip(node) if isinstance(node, str) else node)[: budget[0]])

    walk(value)
    text = "".join(pieces)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _position(data: Any, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest part of `loc` present in the YAML."""
    line, column = 1, 1
    node = data
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                line, column = (lc.key(part) if lc else (line - 1, column - 1))
                line, column = line + 1, column + 1
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line, column = (lc.item(part) if lc else (line - 1, column - 1))
                line, column = line + 1, column + 1
                node = node[part]
            else:
                break
        except (KeyError, AttributeError, TypeError):
            break
    return line, column


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Allowed keys of the model found by following `loc` through the spec's types."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0] if len(options) == 1 else annotation
            if len(options) != 1:
                return annotation
        else:
            return annotation


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None
