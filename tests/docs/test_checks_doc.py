"""docs/checks.md is exactly what alignguard.checks.docs generates from the registered checks."""

from pathlib import Path

from alignguard.checks.base import Check
from alignguard.checks.catalogue import CHECKS, ROOMS, Room, all_check_ids
from alignguard.checks.docs import anchor, render, split_fix

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


def test_checks_doc_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/checks.md is stale: run `python -m alignguard.checks.docs > docs/checks.md`")


def test_every_check_id_has_a_section():
    text = DOC.read_text(encoding="utf-8")
    for check_id in all_check_ids():
        assert f"\n### {check_id}\n" in text and f"(#{anchor(check_id)})" in text


def test_fix_is_split_off_and_a_missing_explanation_is_refused():
    assert split_fix("Proves a. Fix: do b.") == ("Proves a.", "do b.")
    assert split_fix("Proves a only.") == ("Proves a only.", "")

    class Unexplained(Check):
        ids = ("demo.unexplained",)

    try:
        render((Room("Demo", "none", (Unexplained,)),))
    except SystemExit as stop:
        assert "demo.unexplained" in str(stop)
    else:
        raise AssertionError("a check without an explanation must not render")


def test_catalogue_lists_every_check_class_once_by_room():
    import alignguard.checks as package
    import importlib, inspect, pkgutil

    defined = set()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        defined |= {cls for _, cls in inspect.getmembers(module, inspect.isclass)
                    if issubclass(cls, Check) and cls is not Check and cls.__module__ == module.__name__}
    assert set(CHECKS) == defined and len(CHECKS) == len(defined), "list every Check class in checks/catalogue.py"
    rooms = {"Structure": "structure", "Gradients": "gradients", "Numerical probes": "probes"}
    for room in ROOMS:
        assert all(check.__module__.split(".")[2] == rooms[room.name] for check in room.checks)
