"""A structure-aware fuzzer over spec documents: valid YAML built from a seed spec with keys, values
and types mutated (and, sometimes, the text itself damaged), each run through `alignguard check`.

Used by test_spec_fuzz.py (a few dozen documents in the fast suite, 2,000 in the slow one).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import random
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

SEED_SPEC = Path(__file__).parent / "specs" / "fuzz_base.yaml"
SEED = YAML(typ="safe").load(SEED_SPEC.read_text())
NAMES = ["x", "c", "h", "logit", "encoder", "head", "unused", "bce", "invariant", "context", "warning", "error",
         "*", "noise.present", "params.dead", "logit = h * c", "h = encoder(x)", "y", ""]


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {str(k) for k in node} | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


KEYS = sorted(_keys(SEED) | {"min_share", "max_share", "tolerance", "forbidden", "output", "module", "role",
                             "equation", "step", "expires", "symbols", "examples", "noise", "batch_size"})

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(NAMES),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1)),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6),
                                                                     children, max_size=4),
    max_leaves=10,
)
TEXT_DAMAGE = [":", "[", "]", "{", "}", "- ", "&a ", "*a", "!!python/object:os.system ", "\t", "\x00", "\ufeff",
               "%YAML 1.1\n", "---\n", "? ", "'", '"', "#", "\\", "\n  ", "<<: *a\n", "2024-13-45", ".inf"]


def _paths(node: Any, prefix: tuple = (), above: frozenset = frozenset()) -> list[tuple]:
    """Every path into the document; a node that contains itself (an alias made a cycle: valid YAML,
    `&a [*a]`, which the dumper writes and the loader must survive) is entered once per path."""
    found = [prefix]
    if id(node) in above:
        return found
    above = above | {id(node)}
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,), above)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,), above)
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def spec_documents(draw) -> str:
    """YAML text: the seed spec after 1-4 structural mutations, sometimes with its text damaged."""
    doc = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)[1:]))
        parent, last = _parent(doc, path), path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "replace", "rename", "add", "wrap", "alias"]))
        if operation == "delete":
            del parent[last]
        elif operation == "replace":
            parent[last] = draw(VALUES)
        elif operation == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=8))
            parent[new] = parent.pop(last)
        elif operation == "add":
            target = parent[last] if isinstance(parent[last], (dict, list)) else parent
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(VALUES)
            else:
                target.append(draw(VALUES))
        elif operation == "wrap":
            parent[last] = draw(st.sampled_from(["list", "dict"])) == "list" and [parent[last]] or {"value": parent[last]}
        elif operation == "alias":  # the same object twice: the dumper writes an anchor and an alias
            other = draw(st.sampled_from(_paths(doc)[1:]))
            if other[: len(path)] != path and path[: len(other)] != other:
                parent[last] = _parent(doc, other)[other[-1]]
        if not _paths(doc)[1:]:
            break
    stream = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = draw(st.booleans())
    yaml.dump(doc, stream)
    text = stream.getvalue()
    if draw(st.integers(0, 9)) == 0:  # one document in ten: damage the text itself
        rng = random.Random(draw(st.integers(0, 2**32)))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(TEXT_DAMAGE) + text[at + rng.randint(0, 3):]
    return text
