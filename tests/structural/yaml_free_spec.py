"""Variants of the structural spec fixture as text (so a test changes one line and says which)."""

from pathlib import Path

TEXT = (Path(__file__).parent / "cmdn_structure.yaml").read_text()


def replace(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new)


def with_eval(mode: str) -> str:
    return replace("eval: deterministic", f"eval: {mode}")
