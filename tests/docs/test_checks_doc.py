"""docs/checks.md is exactly what alignguard.checks._docs generates from the registered checks."""

from pathlib import Path

from alignguard.checks._docs import anchor, render, split_fix
from alignguard.checks.base import Check, all_check_ids

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


def test_checks_doc_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/checks.md is stale: run `python -m alignguard.checks._docs > docs/checks.md`")


def test_every_check_id_has_a_section():
    text = DOC.read_text(encoding="utf-8")
    for check_id in all_check_ids():
        assert f"\n### {check_id}\n" in text and f"(#{anchor(check_id)})" in text


def test_fix_is_split_off_and_a_missing_explanation_is_refused():
    assert split_fix("Proves a. Fix: do b.") == ("Proves a.", "do b.")
    assert split_fix("Proves a only.") == ("Proves a only.", "")

    class Unexplained(Check):
        ids = ("demo.unexplained",)
        order = 10

    try:
        render([Unexplained])
    except SystemExit as stop:
        assert "demo.unexplained" in str(stop)
    else:
        raise AssertionError("a check without an explanation must not render")
