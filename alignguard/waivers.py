"""Waivers: a spec entry that accepts a known finding, with a reason and an optional expiry.

A matching, unexpired waiver turns a failure into WAIVED (its reason is shown). An expired
waiver fails (`waiver.expired`); a waiver that matches no failure is stale (`waiver.stale`), so
waivers cannot outlive the problem they excused.
"""

from __future__ import annotations

import datetime as dt
from fnmatch import fnmatchcase

from alignguard.checks.base import CheckResult, Status, failed
from alignguard.spec.model import Spec, Waiver


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
