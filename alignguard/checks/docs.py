"""Writes docs/checks.md from the catalogue's `explanations` (the text `alignguard explain` prints).

    python -m alignguard.checks.docs > docs/checks.md

The page is generated so that it cannot drift from the code: tests/docs checks it is current.
"""

from __future__ import annotations

import re
import sys

from alignguard.checks import waivers
from alignguard.checks.catalogue import ROOMS, Room

HEADER = """# Checks

Every check `alignguard check` runs, in report order. Generated from the checks' own explanations
by `python -m alignguard.checks.docs > docs/checks.md` (do not edit by hand); `alignguard explain
ID` prints the same text. Each check yields one PASS or FAIL per design element it judges, and a
check whose selector matches nothing FAILs ("matched nothing"): nothing passes by default.
"""


def anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but `-`/`_` dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def split_fix(text: str) -> tuple[str, str]:
    """(what it proves and cannot prove, the typical fix), split at the last 'Fix:' when there is one."""
    head, marker, fix = text.rpartition("Fix:")
    return (head.strip(), fix.strip()) if marker else (text.strip(), "")


def family(module: str) -> str:
    """The file a check lives in, relative to alignguard/checks/ (e.g. `structure/flow`)."""
    return module.split("alignguard.checks.", 1)[-1].replace(".", "/")


def render(rooms: tuple[Room, ...] | None = None) -> str:
    """docs/checks.md: the catalogue's rooms in report order, then the waiver rules."""
    rooms = ROOMS if rooms is None else rooms
    sections = [(room.name, room.evidence, [(check_id, family(check.__module__), check.explanations.get(check_id),
                                             f"{check.__name__}.explanations")
                                            for check in room.checks for check_id in check.ids])
                for room in rooms]
    sections.append(("Waivers", waivers.EVIDENCE,
                     [(check_id, "waivers", text, "checks/waivers.py RULES") for check_id, text in waivers.RULES.items()]))
    lines = [HEADER, "| check id | family | evidence |", "|---|---|---|"]
    for name, _, entries in sections:
        lines += [f"| [`{check_id}`](#{anchor(check_id)}) | {fam} | {name} |" for check_id, fam, _, _ in entries]
    for name, evidence, entries in sections:
        if not entries:
            continue
        lines += ["", f"## {name}", "", evidence]
        for check_id, _, text, owner in entries:
            if not text:
                raise SystemExit(f"check {check_id} has no explanation; add one to {owner}")
            proves, fix = split_fix(text)
            lines += ["", f"### {check_id}", "", proves]
            if fix:
                lines += ["", f"**Typical fix:** {fix}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
