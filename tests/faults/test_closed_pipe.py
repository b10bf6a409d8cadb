"""`alignguard check ... | head`: a reader that leaves early changes neither the verdict nor the files.

rich answers a closed pipe with SystemExit(1) and click with exit 1 ("misaligned" for an aligned
model), and both stopped the command before its --output files were written (cli/pipes.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.faults.conftest import ROOT, TINY_MODEL, TINY_SPEC


def check_read_by_head(*args) -> tuple[int, str]:
    """Run the console script, read one line of its standard output, close the pipe; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "alignguard", "check", *map(str, args)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    return process.wait(timeout=300), stderr


@pytest.mark.parametrize("model, verdict", [(TINY_MODEL, 0), (ROOT / "models" / "legacy_energy.py", 1)],
                         ids=["aligned", "misaligned"])
def test_a_reader_leaving_early_keeps_the_verdict_and_the_files(tmp_path, model, verdict):
    spec = TINY_SPEC if verdict == 0 else ROOT / "specs" / "cmdn.yaml"
    report = tmp_path / "report.json"
    code, stderr = check_read_by_head(spec, model, "--output", f"json:{report}")
    assert code == verdict, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert json.loads(report.read_text())["exit_code"] == verdict
