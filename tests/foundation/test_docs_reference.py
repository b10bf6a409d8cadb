from pathlib import Path

from alignguard.spec.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"


def test_spec_reference_is_generated_from_the_models():
    assert DOC.read_text() == render() + "\n", (
        "docs/spec-reference.md is stale: run `python -m alignguard.spec.reference > docs/spec-reference.md`"
    )
