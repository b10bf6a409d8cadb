"""`alignguard train` / `alignguard evaluate` end to end: the gate, the run directory, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignguard.cli.app import app

from tests.train.conftest import BROKEN_MODEL, TINY_MODEL, TINY_SPEC

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = {"n_loci": 240, "window": 32, "cells_train": 3, "cells_val": 2, "cells_test": 2,
             "locus_blocks": 6, "val_blocks": 1, "test_blocks": 1, "positive_rate": 0.3}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """A tiny run on a tiny synthetic benchmark (cached once for the module)."""
    folder = tmp_path_factory.mktemp("train-cli")
    config = {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "threads": 1,
              "optim": {"warmup_steps": 2},
              "monitor": {"every_steps": 5, "live": "off", "tensorboard": False, "probe_examples": 60},
              "data": {"synth": TINY_DATA, "cache_dir": str(folder / "cache")}}
    path = folder / "tiny.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_a_model_that_fails_its_check_is_not_trained_and_leaves_no_run_directory(tmp_path, config_file):
    out = tmp_path / "refused"
    code, output = invoke("train", TINY_SPEC, BROKEN_MODEL, "--config", config_file, "--out", out)
    assert code == 1, output
    assert "FAIL" in output and "refused" in output and "nothing was trained" in output
    assert not out.exists()


def test_the_override_is_loud_and_recorded(tmp_path, config_file):
    out = tmp_path / "overridden"
    code, output = invoke("train", TINY_SPEC, BROKEN_MODEL, "--config", config_file, "--out", out,
                          "--max-steps", "3", "--skip-check-i-know")
    assert code == 0, output
    assert "TRAINING DESPITE A FAILED DESIGN CHECK" in output
    run = json.loads((out / "run.json").read_text())
    assert run["gate"] == {**run["gate"], "passed": False, "overridden": True, "exit_code": 1}
    report = json.loads((out / "check_report.json").read_text())
    assert any(r["status"] == "fail" for r in report["results"])


def test_train_then_evaluate_records_provenance_and_prints_metrics_beside_the_ceiling(tmp_path, config_file):
    out = tmp_path / "run"
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--config", config_file, "--out", out, "--seed", "3")
    assert code == 0, output
    assert "design check passed" in output and "Bayes" in output and "positive" in output
    run = json.loads((out / "run.json").read_text())
    assert run["gate"]["passed"] is True and run["gate"]["overridden"] is False
    assert run["model"]["sha256"] == __import__("hashlib").sha256(TINY_MODEL.read_bytes()).hexdigest()
    assert run["versions"]["torch"] and run["device"] == "cpu" and run["precision"]["mode"] == "off"
    assert [s["name"] for s in run["curriculum"]] == ["invariant", "modulator", "joint"]
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    assert (out / "spec.yaml").read_text() == TINY_SPEC.read_text()
    assert (out.parent / "latest").resolve() == out.resolve()
    assert sorted(p.name for p in (out / "report").iterdir()) == [
        "gradient_shares.png", "mi_zI_c.png", "temperature_per_cell.png", "truth_recovery.png", "val_aupr.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["metrics"]["pooled"]["bayes_aupr"] is not None
    panel = summary["test"]["probes"]["truth_recovery"]["unseen_panel"]  # M* across 256 unseen cell lines
    assert panel["cells"] == 256 and -1.0 <= panel["corr_M_truth"] <= 1.0
    assert "further unseen cell lines" in output

    code, output = invoke("evaluate", out)
    assert code == 0, output
    for word in ("AUPR", "Bayes", "positive", "accuracy", "test_c0", "test_c1", "pooled"):
        assert word in output
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation["metrics"]["per_cell"]) == {"test_c0", "test_c1"}

    # An existing run is only ever continued, never overwritten.
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--config", config_file, "--out", out)
    assert code == 2 and "--resume" in output

    # Resuming a finished run with a changed learning rate is refused; a corrupt checkpoint too.
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--out", out, "--resume", "--lr", "0.5")
    assert code == 4 and "optim.lr" in output
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:300])
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--out", out, "--resume")
    assert code == 4 and "corrupt" in output


def test_a_nan_loss_exits_3(tmp_path, config_file, monkeypatch):
    monkeypatch.setenv("TINY_NAN_FROM_STEP", "25")  # after the gate's measurements at step 20
    out = tmp_path / "nan"
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--config", config_file, "--out", out)
    assert code == 3, output
    assert "non-finite loss" in output and "step 25" in output


def test_ctrl_c_in_a_real_process_checkpoints_and_exits_130_and_resume_finishes(tmp_path, config_file):
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "alignguard", "train", str(TINY_SPEC), str(TINY_MODEL), "--config",
               str(config_file), "--out", str(out), "--epochs", "40"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.is_file() or '"kind": "epoch"' not in metrics.read_text()):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the interrupted run did not exit within 120 s of Ctrl-C")
    assert process.returncode == 130, output
    assert "checkpoint written to" in output and "--resume" in output
    code, output = invoke("train", TINY_SPEC, TINY_MODEL, "--out", out, "--resume", "--epochs", "4")
    assert code == 0, output
    run = json.loads((out / "run.json").read_text())
    assert len(run["resumes"]) == 1
