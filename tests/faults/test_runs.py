"""`alignguard train` / `evaluate` under faults: user code failing mid-run, failed starts, failed
resumes, damaged run files, a second writer, a full disk. Nothing a user had may change."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, TRAIN_MODEL, TRAIN_SPEC, assert_no_traceback, run_cli

FAILING_MODEL = '''
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location("tiny_cmdn_base", {base!r})
_base = sys.modules["tiny_cmdn_base"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
globals().update({{k: v for k, v in vars(_base).items() if not k.startswith("__")}})


def loss_terms(model, batch, outputs, step):
    if {condition}:  # training steps only: the gate measures at steps 0 and 20
        {action}
    return _base.loss_terms(model, batch, outputs, step)
'''


def failing_model(tmp_path: Path, condition: str, action: str) -> Path:
    path = tmp_path / "failing.py"
    path.write_text(FAILING_MODEL.format(base=str(TRAIN_MODEL), condition=condition, action=action))
    return path


def line_of(path: Path, needle: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def train(config: Path, out: Path, *args, model: Path = TRAIN_MODEL):
    return run_cli("train", TRAIN_SPEC, model, "--config", config, "--out", out, *args)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, train_config) -> Path:
    """A finished 3-step run (it stopped at its step budget), copied by each test that needs one."""
    out = tmp_path_factory.mktemp("base") / "run"
    outcome = train(train_config, out, "--max-steps", "3")
    assert outcome.code == 0, outcome.text
    return out


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(base_run, target)
    return target


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run but the lock (which names the last process that held it)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.mark.slow
def test_user_code_failing_mid_training_is_exit_2_located_and_the_run_stays_resumable(tmp_path, train_config):
    model = failing_model(tmp_path, "step >= 25", "raise ValueError(f'bad batch at step {step}')")
    out = tmp_path / "run"
    outcome = train(train_config, out, model=model)
    assert outcome.code == 2, outcome.text
    assert "`loss_terms(model, batch, outputs, step=25)` raised ValueError: bad batch at step 25" in outcome.text
    assert f"{model}:{line_of(model, 'raise')}" in outcome.text
    assert_no_traceback(outcome)
    run = json.loads((out / "run.json").read_text())
    assert run["last_step"] == 25 and (out / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("action", ["sys.exit(0)", pytest.param("os._exit(0)", marks=pytest.mark.slow)])
def test_an_exit_mid_training_is_exit_2_not_a_finished_run(tmp_path, train_config, action):
    model = failing_model(tmp_path, "2 <= step < 20", action)
    outcome = train(train_config, tmp_path / "run", model=model)
    assert outcome.code == 2, outcome.text
    assert "the model file exited before training finished" in outcome.text, outcome.text
    assert f"{model}:{line_of(model, action)}" in outcome.text


def test_an_exit_at_import_trains_nothing_and_writes_nothing(tmp_path, train_config):
    model = tmp_path / "exits.py"
    model.write_text("import sys\nsys.exit(0)\n")
    outcome = train(train_config, tmp_path / "run", model=model)
    assert outcome.code == 2 and "exited before training finished" in outcome.text
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_nothing_behind_and_the_retry_succeeds(tmp_path, train_config):
    out = tmp_path / "run"
    out.mkdir()  # an empty directory the user made for the run
    outcome = train(train_config, out, "--max-steps", "2", "--set", f"data.path={tmp_path / 'no-such-dataset'}")
    assert outcome.code == 2 and "no-such-dataset" in outcome.text, outcome.text
    assert out.is_dir() and not any(out.iterdir())
    assert not (tmp_path / "latest").exists()
    retry = train(train_config, out, "--max-steps", "2")
    assert retry.code == 0, retry.text


def test_resume_with_a_larger_budget_continues_and_an_equal_one_says_why_not(run_copy, train_config):
    outcome = train(train_config, run_copy, "--resume", "--max-steps", "6")
    assert outcome.code == 0, outcome.text
    said = " ".join(outcome.text.split())  # the console wraps long lines
    assert "continuing" in said and "from step 3" in said
    assert json.loads((run_copy / "run.json").read_text())["last_step"] == 6
    steps = [json.loads(line)["step"] for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) >= 5
    before = snapshot(run_copy)
    again = train(train_config, run_copy, "--resume", "--max-steps", "6")
    said = " ".join(again.text.split())
    assert again.code == 0 and "nothing to train" in said and "--max-steps larger than 6" in said
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("damage, named", [
    (lambda run: (run / "config.json").write_text('{"epochs": 3,'), "config.json"),
    (lambda run: (run / "config.json").unlink(), "config.json"),
    (lambda run: (run / "config.json").write_bytes(b"\xff\xfe\x00garbage"), "config.json"),
    (lambda run: (run / "config.json").write_text('["a list"]'), "config.json"),
    (lambda run: (run / "run.json").write_text("{not json"), "run.json"),
    (lambda run: (run / "run.json").write_text('{"model": 3}'), "run.json"),
    (lambda run: (run / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated"), "last.pt"),
])
def test_a_failed_resume_is_exit_4_and_changes_nothing(run_copy, train_config, damage, named):
    damage(run_copy)
    before = snapshot(run_copy)
    outcome = train(train_config, run_copy, "--resume", "--max-steps", "6")
    assert outcome.code == 4, outcome.text
    assert named in outcome.stderr and "Where:" in outcome.stderr
    assert snapshot(run_copy) == before  # run.json's last_step once became 0 here
    assert_no_traceback(outcome)


def test_a_second_writer_is_refused_while_the_first_holds_the_run(run_copy, train_config):
    from alignguard.train.rundir import RunLock

    lock = RunLock(run_copy)
    try:
        before = snapshot(run_copy)
        outcome = train(train_config, run_copy, "--resume", "--max-steps", "6")
        assert outcome.code == 2 and "another `alignguard train`" in outcome.stderr, outcome.text
        assert snapshot(run_copy) == before
    finally:
        lock.release()
    RunLock(run_copy).release()  # released means free: the next writer gets it


@pytest.mark.slow
def test_concurrent_trainers_on_one_run_directory_never_interleave(run_copy, train_config):
    command = [sys.executable, "-m", "alignguard", "train", str(TRAIN_SPEC), str(TRAIN_MODEL), "--config",
               str(train_config), "--out", str(run_copy), "--resume", "--max-steps", "12"]
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read()) for p in processes]
    codes = sorted(code for code, _ in results)
    # one trains; the other is refused by the lock, or (if it started after the first finished) finds
    # nothing left to train
    assert codes in ([0, 2], [0, 0]), results
    if codes == [0, 2]:
        assert any("another `alignguard train`" in text for _, text in results)
    else:
        assert any("nothing to train" in text for _, text in results)
    records = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    step_records = [r["step"] for r in records if r.get("kind") == "step"]
    assert step_records == sorted(step_records) and len(step_records) == len(set(step_records))


def test_a_checkpoint_write_failing_inside_torch_is_exit_4_with_the_previous_intact(run_copy, train_config,
                                                                                     monkeypatch):
    from alignguard.train import checkpoint

    def full_disk(handle, payload):
        handle.write(b"PK\x03\x04partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    saved = {name: (run_copy / "checkpoints" / name).read_bytes() for name in ("last.pt", "best.pt")}
    monkeypatch.setattr(checkpoint, "_write_payload", full_disk)
    outcome = train(train_config, run_copy, "--resume", "--max-steps", "6")
    assert outcome.code == 4, outcome.text
    # whichever checkpoint the run writes first (best.pt when the epoch is a new best) fails, and says so
    assert "could not write checkpoint" in outcome.stderr
    assert re.search(r"previous (last|best)\.pt is intact", outcome.stderr), outcome.stderr
    assert {name: (run_copy / "checkpoints" / name).read_bytes() for name in saved} == saved
    assert not list((run_copy / "checkpoints").glob(".*tmp*"))


@pytest.mark.slow
def test_a_file_size_limit_while_training_is_exit_4(run_copy, train_config):
    """A real write failure (RLIMIT_FSIZE: the test cannot mount a small tmpfs everywhere)."""
    limit = 30_000  # above every run file written so far, below a checkpoint (~39 kB)

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    previous = (run_copy / "checkpoints" / "last.pt").read_bytes()
    command = [sys.executable, "-m", "alignguard", "train", str(TRAIN_SPEC), str(TRAIN_MODEL), "--config",
               str(train_config), "--out", str(run_copy), "--resume", "--max-steps", "6"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, preexec_fn=limited, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and ("disk is full" in done.stderr or "could not write" in done.stderr)
    assert (run_copy / "checkpoints" / "last.pt").read_bytes() == previous


def test_evaluate_names_what_the_run_lacks(run_copy):
    (run_copy / "checkpoints" / "best.pt").unlink()
    outcome = run_cli("evaluate", run_copy)
    assert outcome.code == 4 and "no best checkpoint" in outcome.stderr and "resume from" not in outcome.stderr
    (run_copy / "config.json").unlink()
    outcome = run_cli("evaluate", run_copy)
    assert outcome.code == 4 and "config.json" in outcome.stderr
    outcome = run_cli("evaluate", run_copy / "checkpoints")
    assert outcome.code == 2 and "not an alignguard run directory" in outcome.stderr


CHATTY_MODEL = '''
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location("tiny_cmdn_base", {base!r})
_base = sys.modules["tiny_cmdn_base"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
globals().update({{k: v for k, v in vars(_base).items() if not k.startswith("__")}})
print("hello at import")


def build_model():
    print("hello from build_model")
    os.write(1, b"raw fd write\\n")
    return _base.build_model()
'''


def test_evaluate_format_json_is_one_clean_document_even_when_the_model_prints(tmp_path, train_config):
    model = tmp_path / "chatty.py"
    model.write_text(CHATTY_MODEL.format(base=str(TRAIN_MODEL)))
    run = tmp_path / "run"
    assert train(train_config, run, "--max-steps", "3", model=model).code == 0
    outcome = run_cli("evaluate", run, "--format", "json")
    assert outcome.code == 0, outcome.text
    document = json.loads(outcome.stdout)  # stdout is the document alone
    assert document == json.loads((run / "evaluation.json").read_text())
    assert document["split"] == "test" and document["metrics"]["pooled"]["bayes_aupr"] is not None
    assert "hello from build_model" in outcome.stderr and "raw fd write" in outcome.stderr
    assert "AUPR" in outcome.stderr  # the tables still show, on stderr
    assert run_cli("evaluate", run, "--format", "xml").code == 2


@pytest.mark.parametrize("setting, expected", [("optim.betas=[1.5,0.999]", "optim.betas"),
                                               ("optim.lr=.inf", "optim.lr"), ("epochs=-1", "epochs")])
def test_impossible_settings_are_exit_2_before_anything_runs(tmp_path, train_config, setting, expected):
    outcome = train(train_config, tmp_path / "run", "--set", setting)
    assert outcome.code == 2 and expected in outcome.stderr, outcome.text
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("data", [b"epochs: caf\xe9\n", "\ufeffepochs: 3\n".encode("utf-16"),
                                  b"expires: 2024-13-45\n", b"a: " + b"[" * 5000])
def test_a_bad_config_file_is_exit_2_naming_it(tmp_path, data):
    config = tmp_path / "config.yaml"
    config.write_bytes(data)
    outcome = run_cli("train", TRAIN_SPEC, TRAIN_MODEL, "--config", config, "--out", tmp_path / "run")
    assert outcome.code == 2 and str(config) in outcome.stderr, outcome.text
    assert_no_traceback(outcome)
