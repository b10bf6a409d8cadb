"""Writes docs/checks.md from the registered checks' `explanations` (the text `alignguard explain` prints).

    python -m alignguard.checks._docs > docs/checks.md

The page is generated so that it cannot drift from the code: tests/docs checks it is current.
"""

from __future__ import annotations

import re
import sys

from alignguard.checks.base import Check, registered_checks

# Report order bands (see Check.order): what evidence a check family rests on.
BANDS = (
    (50, "Structure",
     "From the forward graph captured in train mode (torch.fx, or the fallback capture the report names)."),
    (70, "Gradients", "Measured with autograd on the real model (never the traced copy), at the spec's steps."),
    (99, "Numerical probes", "Black-box forward passes of the real model under controlled interventions."),
    (None, "Waivers", "Rules about the spec's own waivers, applied after every other check."),
)

HEADER = """# Checks

Every check `alignguard check` runs, in report order. Generated from the checks' own explanations
by `python -m alignguard.checks._docs > docs/checks.md` (do not edit by hand); `alignguard explain
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


def band_of(check: type[Check]) -> str:
    return next(name for limit, name, _ in BANDS if limit is None or check.order < limit)


def render(checks: list[type[Check]] | None = None) -> str:
    checks = registered_checks() if checks is None else checks
    lines = [HEADER, "| check id | family | evidence |", "|---|---|---|"]
    for check in checks:
        for check_id in check.ids:
            lines.append(f"| [`{check_id}`](#{anchor(check_id)}) | {check.__module__.rsplit('.', 1)[-1]} "
                         f"| {band_of(check)} |")
    for limit, band, evidence in BANDS:
        members = [check for check in checks if band_of(check) == band]
        if not members:
            continue
        lines += ["", f"## {band}", "", evidence]
        for check in members:
            for check_id in check.ids:
                text = check.explanations.get(check_id)
                if not text:
                    raise SystemExit(f"check {check_id} ({check.__module__}) has no explanation; add one to "
                                     f"{check.__name__}.explanations")
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
