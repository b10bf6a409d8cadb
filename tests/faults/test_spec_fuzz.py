"""Whatever a spec document holds, `check` exits 0, 1 or 2 with a readable message, never a
traceback, and --format json stays a valid document. Figures of the slow run: docs/benchmarks.md."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.faults.conftest import TINY_MODEL, run_cli
from tests.faults.spec_fuzz import spec_documents

KINDS = ("spec error:", "model file error:", "capture error:", "usage error:")


def check_one(text: str, folder: Path, tally: Counter) -> None:
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    outcome = run_cli("check", path, TINY_MODEL, "--format", "json", "--timeout", "120")
    tally[outcome.code] += 1
    assert outcome.code in (0, 1, 2), outcome.text
    assert "Traceback" not in outcome.text and "internal error" not in outcome.stderr, (text, outcome.text)
    report = json.loads(outcome.stdout)
    assert report["exit_code"] == outcome.code
    if outcome.code == 2:
        assert outcome.stderr.startswith(KINDS) and "Fix:" in outcome.stderr, (text, outcome.stderr)


def fuzz(examples: int, derandomize: bool) -> tuple[Counter, float]:
    tally: Counter = Counter()
    folder = Path(tempfile.mkdtemp(prefix="spec-fuzz-"))

    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_documents())
    def run(text: str) -> None:
        check_one(text, folder, tally)

    started = time.perf_counter()
    run()
    return tally, time.perf_counter() - started


def test_fuzzed_specs_exit_0_1_or_2_with_a_message():
    tally, _ = fuzz(examples=15, derandomize=True)
    assert sum(tally.values()) >= 15 and tally[2] > 0


@pytest.mark.slow
def test_two_thousand_fuzzed_specs(capsys):
    tally, seconds = fuzz(examples=2000, derandomize=False)
    total = sum(tally.values())
    assert total >= 2000
    with capsys.disabled():
        print(f"\nspec fuzzer: {total} documents in {seconds:.0f} s ({seconds / total * 1000:.0f} ms each); "
              f"exit codes: " + ", ".join(f"{code}: {tally[code]}" for code in sorted(tally)))
