"""Basic indexing (`c[:, :8]`, `c[..., -1]`, `c.narrow(1, 8, 1)`) as plain data, and which elements it reads.

A named input part (`c: {parts: {accessibility: "[:, -1]"}}`) and every selection node of the
captured graph are described in one form, a tuple with one entry per indexed dimension:

    ("all",)                   `:`
    ("slice", start, stop, step)
    ("index", i)               an integer: that element, the dimension dropped
    ("ellipsis",)              `...`

so that "does this slice of c read the accessibility column?" is a comparison of index sets on
the input's real shape. A key holding anything else (a tensor mask, None/newaxis, a list) is not
described (None): the graph then treats the node as reading the whole input, which can only make
a forbidden flow appear, never hide one.
"""

from __future__ import annotations

import ast
from typing import Any, Sequence

Selection = tuple[tuple, ...]


class SelectionSyntaxError(ValueError):
    """A part's slice text that is not basic integer indexing."""


def describe_key(key: Any) -> Selection | None:
    """The selection a Python `__getitem__` key makes, or None when it is not basic integer indexing."""
    items = key if isinstance(key, tuple) else (key,)
    described = []
    for item in items:
        if item is Ellipsis:
            described.append(("ellipsis",))
        elif isinstance(item, slice):
            bounds = (item.start, item.stop, item.step)
            if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
                return None
            described.append(("all",) if bounds == (None, None, None) else ("slice", *bounds))
        elif isinstance(item, int) and not isinstance(item, bool):
            described.append(("index", item))
        else:
            return None
    if sum(entry == ("ellipsis",) for entry in described) > 1:
        return None
    return tuple(described)


def narrow_selection(dim: Any, start: Any, length: Any) -> Selection | None:
    """`t.narrow(dim, start, length)` as a selection (non-negative dim only)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (dim, start, length)) or dim < 0:
        return None
    return (*([("all",)] * dim), ("slice", start, start + length, None))


def parse_selection(text: str, of: str = "input") -> Selection:
    """`"[:, :8]"` -> the selection; raises SelectionSyntaxError (with what to write) otherwise.
    `of` names what is sliced in the messages (an input's part, a symbol's slice of a tensor)."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        raise SelectionSyntaxError(f"'{text}' is not a slice: write it in brackets, e.g. \"[:, :8]\" or \"[:, -1]\"")
    try:
        node = ast.parse(f"_{stripped}", mode="eval").body
    except SyntaxError:
        raise SelectionSyntaxError(f"'{text}' is not valid Python indexing") from None
    if not isinstance(node, ast.Subscript):
        raise SelectionSyntaxError(f"'{text}' is not a single subscript")
    elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    key = tuple(_key_item(element, text) for element in elements)
    described = describe_key(key)
    if described is None:
        raise SelectionSyntaxError(f"'{text}' uses more than one `...`")
    if all(entry in (("all",), ("ellipsis",)) for entry in described):
        raise SelectionSyntaxError(f"'{text}' selects the whole {of}: a slice must select some of it")
    if any(entry[0] == "slice" and entry[3] is not None and entry[3] <= 0 for entry in described):
        raise SelectionSyntaxError(f"'{text}' has a step <= 0: write steps as positive integers (tensors "
                                   "cannot be indexed backwards)")
    return described


def _key_item(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Slice):
        return slice(*(None if b is None else _integer(b, text) for b in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis
    return _integer(node, text)


def _integer(node: ast.AST, text: str) -> int:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SelectionSyntaxError(f"'{text}': only integers, `:` slices and `...` are allowed, "
                                   f"not {ast.unparse(node)}")
    return value


def read_elements(selection: Selection, shape: Sequence[int]) -> list[range] | None:
    """Per dimension of `shape`, the indices the selection reads (None: it does not fit the shape)."""
    entries = list(selection)
    if ("ellipsis",) in entries:
        at = entries.index(("ellipsis",))
        fill = len(shape) - (len(entries) - 1)
        if fill < 0:
            return None
        entries[at: at + 1] = [("all",)] * fill
    if len(entries) > len(shape):
        return None
    entries += [("all",)] * (len(shape) - len(entries))
    ranges = []
    for entry, size in zip(entries, shape):
        if entry[0] == "all":
            ranges.append(range(size))
        elif entry[0] == "slice":
            ranges.append(range(size)[slice(*entry[1:])])
        else:
            index = entry[1] + size if entry[1] < 0 else entry[1]
            if not 0 <= index < size:
                return None
            ranges.append(range(index, index + 1))
    return ranges


def fit_problem(selection: Selection, shape: Sequence[int]) -> str | None:
    """Why the selection cannot be taken of a tensor of `shape` (too many indices, an index out of
    range, a slice that selects nothing), or None when it fits."""
    indexed = sum(entry != ("ellipsis",) for entry in selection)
    if indexed > len(shape):
        return f"it indexes {indexed} dimension(s) of a tensor of shape {list(shape)} ({len(shape)} dimension(s))"
    ranges = read_elements(selection, shape)
    if ranges is None:
        return f"an index is out of range for shape {list(shape)}"
    if any(len(r) == 0 for r in ranges):
        return f"it selects no element of a tensor of shape {list(shape)}"
    return None


def to_key(selection: Selection) -> tuple:
    """The `__getitem__` key a selection stands for (`tensor[to_key(s)]`)."""
    kinds = {"all": lambda: slice(None), "ellipsis": lambda: Ellipsis}
    return tuple(kinds[e[0]]() if e[0] in kinds else (slice(*e[1:]) if e[0] == "slice" else e[1])
                 for e in selection)


def same_elements(first: Selection, second: Selection, shape: Sequence[int] | None) -> bool:
    """Whether two selections take the same tensor: the same text up to trailing `:`s, or, with the
    tensor's `shape`, the same elements with the same dimensions kept."""
    if _trimmed(first) == _trimmed(second):
        return True
    if shape is None:
        return False
    a, b = _expanded(first, len(shape)), _expanded(second, len(shape))
    if a is None or b is None or [e[0] == "index" for e in a] != [e[0] == "index" for e in b]:
        return False
    return read_elements(first, shape) == read_elements(second, shape)


def _trimmed(selection: Selection) -> Selection:
    entries = list(selection)
    while entries and entries[-1] in (("all",), ("ellipsis",)):
        entries.pop()
    return tuple(entries)


def _expanded(selection: Selection, rank: int) -> list | None:
    entries = list(selection)
    if ("ellipsis",) in entries:
        at = entries.index(("ellipsis",))
        fill = rank - (len(entries) - 1)
        if fill < 0:
            return None
        entries[at: at + 1] = [("all",)] * fill
    return entries + [("all",)] * (rank - len(entries)) if len(entries) <= rank else None


def split_selection(split: tuple, element: int, shape: Sequence[int]) -> Selection | None:
    """Element `element` of `t.chunk(n, dim)` (split ("chunk", n, dim)) or `t.split(size, dim)`
    (("split", size, dim)) as a selection of a tensor of `shape`; None when there is no such element."""
    kind, number, dim = split
    if not shape or not -len(shape) <= dim < len(shape) or number <= 0:
        return None
    dim %= len(shape)
    size = shape[dim]
    width = -(-size // number) if kind == "chunk" else number  # torch.chunk: ceil(size / n) per chunk
    start = element * width
    if width == 0 or start >= size:
        return None
    return (*([("all",)] * dim), ("slice", start, min(start + width, size), None))


def split_of(op: str, args: Sequence[Any], kwargs: dict) -> tuple | None:
    """("chunk", n, dim) for `t.chunk(n, dim)`, ("split", size, dim) for `t.split(size, dim)`, else None."""
    if op not in ("chunk", "split") or len(args) < 2 and not kwargs:
        return None
    number = args[1] if len(args) > 1 else kwargs.get("chunks", kwargs.get("split_size_or_sections",
                                                                            kwargs.get("split_size")))
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (number, dim)):
        return None
    return (op, number, dim)


def overlaps(first: Selection, second: Selection, shape: Sequence[int]) -> bool:
    """Whether two selections of a tensor of `shape` read a common element (True when either does not fit)."""
    a, b = read_elements(first, shape), read_elements(second, shape)
    if a is None or b is None:
        return True
    return all(set(x) & set(y) for x, y in zip(a, b))


def render(selection: Selection) -> str:
    """Back to Python indexing text, e.g. `[:, 8]`."""
    parts = []
    for entry in selection:
        if entry[0] == "all":
            parts.append(":")
        elif entry[0] == "ellipsis":
            parts.append("...")
        elif entry[0] == "index":
            parts.append(str(entry[1]))
        else:
            start, stop, step = ("" if v is None else str(v) for v in entry[1:])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
    return "[" + ", ".join(parts) + "]"


def selection_of(op: str, args: Sequence[Any], kwargs: dict) -> Selection | None:
    """The selection a captured call makes of its first operand (`getitem`, `narrow`, `select`), else None."""
    if op == "getitem" and len(args) > 1:
        return describe_key(args[1])
    values = list(args[1:]) + [kwargs[k] for k in ("dim", "start", "length", "index") if k in kwargs]
    if op == "narrow" and len(values) == 3:
        return narrow_selection(*values)
    if op == "select" and len(values) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return (*([("all",)] * values[0]), ("index", values[1])) if values[0] >= 0 else None
    return None
