"""waiver.expired and waiver.stale: registered here so that `alignguard explain` and the SARIF
rules know them. The results themselves come from `alignguard.waivers.apply_waivers`, which runs
after every check (it needs all their results), so this class never runs on its own.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check, CheckResult, register


@register
class WaiverRules(Check):
    ids = ("waiver.expired", "waiver.stale")
    order = 99
    explanations = {
        "waiver.expired": (
            "A spec waiver accepts a known failure (check id and element selector, with a reason) until "
            "its `expires` date. After that date the waiver fails the run instead of hiding the finding, "
            "so an accepted risk is revisited. Fix: fix the finding and delete the waiver, or renew "
            "`expires` with a reason reviewers accept."
        ),
        "waiver.stale": (
            "A waiver that matches no failing result is stale: the problem it excused is gone, or its "
            "`check`/`selector` glob is misspelled and it excuses nothing. Stale waivers fail (severity "
            "error unless the spec's `severity` says otherwise) so that waivers cannot accumulate. Fix: "
            "delete the waiver, or correct its selector (the element as the report prints it, e.g. "
            "`loss kl`)."
        ),
    }

    def applies(self, spec) -> bool:
        return False  # apply_waivers produces these results; see the module docstring

    def run(self, context) -> Iterable[CheckResult]:
        return ()
