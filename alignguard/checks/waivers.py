"""Waivers: a spec entry that accepts a known finding, with a reason and an optional expiry.

A matching, unexpired waiver turns a failure into WAIVED (its reason is shown). An expired
waiver fails (`waiver.expired`); a waiver that matches no failure is stale (`waiver.stale`), so
waivers cannot outlive the problem they excused. Waiver rules are not checks of the model: they
run after every check (they need all the results), so they are explained here and listed last
by the catalogue.
"""

from __future__ import annotations

import datetime as dt
from fnmatch import fnmatchcase

from alignguard.results import CheckResult, Status, failed
from alignguard.spec.model import Spec, Waiver

EVIDENCE = "Rules about the spec's own waivers, applied after every other check."

RULES = {
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


def matches(waiver: Waiver, result: CheckResult) -> bool:
    return fnmatchcase(result.check_id, waiver.check) and fnmatchcase(result.element, waiver.selector)


def apply_waivers(spec: Spec, results: list[CheckResult], today: dt.date | None = None) -> list[CheckResult]:
    today = today or dt.date.today()
    used: set[int] = set()
    out: list[CheckResult] = []
    for result in results:
        if result.status is Status.FAIL:
            for index, waiver in enumerate(spec.waivers):
                if matches(waiver, result):
                    used.add(index)
                    if waiver.expires is None or waiver.expires >= today:
                        result = result.with_(status=Status.WAIVED, note=waiver.reason)
                    break
        out.append(result)
    for index, waiver in enumerate(spec.waivers):
        element = f"waiver {waiver.check} {waiver.selector}"
        if waiver.expires is not None and waiver.expires < today:
            out.append(failed("waiver.expired", element, f"waiver valid (expires {waiver.expires})",
                              f"expired on {waiver.expires}: {waiver.reason}",
                              fix="fix the finding and delete the waiver, or renew `expires` with a reason",
                              severity=spec.severity_of("waiver.expired")))
        elif index not in used:
            out.append(failed("waiver.stale", element, "the waiver excuses a current failure",
                              "it matches no failing check (stale)",
                              fix="delete the waiver: the problem it excused is gone (or fix its selector)",
                              severity=spec.severity_of("waiver.stale")))
    return out
