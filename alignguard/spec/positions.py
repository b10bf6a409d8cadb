"""Where each design element sits in the spec file.

The loader records the line of every key and list item of the YAML it read (`yaml_lines`);
a check result names the element it judges ("loss kl", "flow x -> z_I", "waiver probe.* symbol M"),
and `element_loc` turns that name into the path of the entry that defines it, using the spec's
own entries, so report anchors never re-read the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignguard.spec.model import Spec

Loc = tuple[str | int, ...]

# The first word of a result's element -> the spec section that defines it.
SECTIONS = {
    "input": "inputs", "symbol": "symbols", "component": "components", "loss": "losses", "losses": "losses",
    "formula": "formulas", "pattern": "forbidden_patterns", "flow": "flow", "path": "flow", "probe": "probes",
    "waiver": "waivers", "gradients": "gradients", "gradient": "gradients", "params": "gradients",
    "parameter": "gradients",
}


def yaml_lines(data: Any, loc: Loc = ()) -> dict[Loc, int]:
    """1-based line of every key and list item of a ruamel.yaml round-trip document, by path."""
    lines: dict[Loc, int] = {}
    lc = getattr(data, "lc", None)
    if isinstance(data, dict):
        for key, value in data.items():
            if lc is not None:
                lines[(*loc, key)] = lc.key(key)[0] + 1
            lines.update(yaml_lines(value, (*loc, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if lc is not None:
                lines[(*loc, index)] = lc.item(index)[0] + 1
            lines.update(yaml_lines(value, (*loc, index)))
    return lines


def yaml_columns(data: Any, loc: Loc = ()) -> dict[Loc, int]:
    """1-based column of every key and list item, by path (as `yaml_lines`)."""
    columns: dict[Loc, int] = {}
    lc = getattr(data, "lc", None)
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if lc is not None:
            columns[(*loc, key)] = (lc.key(key) if isinstance(data, dict) else lc.item(key))[1] + 1
        columns.update(yaml_columns(value, (*loc, key)))
    return columns


def element_loc(spec: "Spec", element: str) -> Loc:
    """The path of the spec entry an element names; its section when no entry matches; () if none."""
    kind, _, name = element.partition(" ")
    section = SECTIONS.get(kind)
    if section is None:
        return ()
    entries: dict[str, Loc] = {}
    if section in ("inputs", "symbols", "components", "losses"):
        entries = {key: (section, key) for key in getattr(spec, section)}
    elif section == "formulas":
        entries = {formula.parsed.lhs: (section, i) for i, formula in reversed(list(enumerate(spec.formulas)))}
    elif section == "forbidden_patterns":
        entries = {pattern.name: (section, i) for i, pattern in enumerate(spec.forbidden_patterns)}
    elif section == "flow":
        entries = {rule.describe(): (section, which, i) for which in ("forbidden", "required")
                   for i, rule in enumerate(getattr(spec.flow, which))}
    elif section == "waivers":
        entries = {f"{w.check} {w.selector}": (section, i) for i, w in enumerate(spec.waivers)}
    return entries.get(name, (section,))
