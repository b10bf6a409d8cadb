"""docs/data.md documents every SynthConfig field with its real default, and every batch key."""

from __future__ import annotations

from pathlib import Path

from alignguard.data.config import SynthConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_every_synth_field_is_documented_with_its_default():
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in DOC.read_text().splitlines()
            if line.startswith("| `")}  # fmt: skip
    for name, field in SynthConfig.model_fields.items():
        assert f"`{name}`" in rows, f"docs/data.md lacks a row for SynthConfig.{name}"
        assert rows[f"`{name}`"] == f"`{field.default}`", f"docs/data.md shows a stale default for {name}"


def test_batch_contract_keys_are_documented():
    text = DOC.read_text()
    for key in ("x", "c", "y", "cell", "locus", "p_true"):
        assert f"| `{key}` |" in text
