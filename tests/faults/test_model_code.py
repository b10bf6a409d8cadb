"""Nothing inside a model file can make the gate say "aligned": exits, signals, crashes, hangs, prints."""

from __future__ import annotations

import json
import re

import pytest

from tests.faults.conftest import TINY_SPEC, TRAIN_MODEL, TRAIN_SPEC, assert_no_traceback, model_variant, run_cli

FORWARD = "        h = self.encoder(x)\n"
BUILD = "def build_model():\n"


def forward_doing(tmp_path, name: str, code: str):
    return model_variant(tmp_path, name, {FORWARD: f"        {code}\n{FORWARD}"})


def line_of(path, needle: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name, code, how", [
    ("sys_exit_0", "import sys; sys.exit(0)", "sys.exit(0)"),
    ("os_exit_0", "import os; os._exit(0)", "os._exit(0)"),
    ("exit_message", "raise SystemExit('bye')", "sys.exit('bye')"),
    ("quit", "quit()", "sys.exit(0)"),
])
def test_an_exit_in_forward_is_exit_2_located_never_a_verdict(tmp_path, name, code, how):
    model = forward_doing(tmp_path, name, code)
    outcome = run_cli("check", TINY_SPEC, model, "--format", "json")
    assert outcome.code == 2, outcome.text
    assert "exited before the check finished" in outcome.stderr and how in outcome.stderr
    assert f"{model}:{line_of(model, code)}" in outcome.stderr and "(in forward)" in outcome.stderr
    assert json.loads(outcome.stdout)["verdict"] != "aligned"  # the machine-readable report says so too
    assert_no_traceback(outcome)


def test_an_exit_at_import_names_the_line(tmp_path):
    model = model_variant(tmp_path, "import_exit", {}, prefix="import sys\nsys.exit(0)\n")
    outcome = run_cli("check", TINY_SPEC, model)
    assert outcome.code == 2 and "importing the model file" in outcome.stderr
    assert f"{model}:2" in outcome.stderr


def test_a_chosen_exit_code_does_not_leak(tmp_path):
    model = model_variant(tmp_path, "build_exit", {BUILD: BUILD + "    import sys; sys.exit(5)\n"})
    outcome = run_cli("check", TINY_SPEC, model)
    assert outcome.code == 2 and "sys.exit(5)" in outcome.stderr and "build_model()" in outcome.stderr


def test_a_model_that_kills_its_own_process_is_exit_2(tmp_path):
    model = forward_doing(tmp_path, "sigkill", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    outcome = run_cli("check", TINY_SPEC, model)
    assert outcome.code == 2 and "killed by SIGKILL" in outcome.stderr, outcome.text


def test_a_crash_inside_c_names_the_signal_and_the_line(tmp_path):
    code = "import ctypes; ctypes.string_at(0)"
    model = forward_doing(tmp_path, "segfault", code)
    outcome = run_cli("check", TINY_SPEC, model)
    assert outcome.code == 2 and "SIGSEGV" in outcome.stderr, outcome.text
    assert f"{model}:{line_of(model, code)}" in outcome.stderr


@pytest.mark.parametrize("code", ["import time; time.sleep(1000)",
                                  pytest.param("while True: pass", marks=pytest.mark.slow)])
def test_a_hung_forward_ends_at_the_timeout_naming_phase_and_line(tmp_path, code):
    model = forward_doing(tmp_path, "hang", code)
    # long enough to reach forward on a loaded machine (the clock starts before the model file imports)
    outcome = run_cli("check", TINY_SPEC, model, "--timeout", "20")
    assert outcome.code == 2, outcome.text
    assert "did not finish within --timeout 20 s" in outcome.stderr
    assert "during capturing the forward graph" in outcome.stderr
    assert f"{model}:{line_of(model, code)}" in outcome.stderr


HANG = "import time; time.sleep(1000)"
SHORT = 10  # seconds: enough to reach forward on a loaded machine, short enough for the fast suite


@pytest.mark.parametrize("command, activity", [
    (("init", "{model}", "--output", "{tmp}/spec.yaml"), "the survey"),
    (("graph", "{spec}", "{model}", "--output", "{tmp}/g.dot"), "drawing the graph"),
    (("mutate", "{spec}", "{model}", "--format", "json"), "mutation testing"),
])
def test_every_command_that_runs_model_code_ends_a_hung_forward(tmp_path, command, activity):
    model = forward_doing(tmp_path, "hang", HANG)
    args = [part.format(model=model, spec=TINY_SPEC, tmp=tmp_path) for part in command]
    outcome = run_cli(*args, "--timeout", SHORT)
    assert outcome.code == 2, outcome.text
    assert f"{activity} did not finish within --timeout {SHORT} s" in outcome.stderr
    assert f"{model}:{line_of(model, HANG)}" in outcome.stderr and "(in forward)" in outcome.stderr
    assert not (tmp_path / "spec.yaml").exists() and not (tmp_path / "g.dot").exists()
    assert outcome.stdout == ""  # no half report
    assert_no_traceback(outcome)


def test_the_timeout_of_tool_alignguard_applies_beyond_check(tmp_path, monkeypatch):
    model = forward_doing(tmp_path, "hang", HANG)
    (tmp_path / "pyproject.toml").write_text("[tool.alignguard]\ntimeout = 2\n")  # wherever it is stopped
    monkeypatch.chdir(tmp_path)
    outcome = run_cli("graph", TINY_SPEC, model, "--output", tmp_path / "g.dot")
    assert outcome.code == 2 and "drawing the graph did not finish within --timeout 2 s" in outcome.stderr


def test_mutate_bounds_each_mutant_and_names_the_one_that_hung(tmp_path):
    # hangs only when a mutant makes the head's score constant (component.constant:encoder or :head)
    code = "if score.numel() > 1 and float(score.std()) == 0: time.sleep(1000)"
    score = "        score = self.head(h).squeeze(-1)\n"
    model = model_variant(tmp_path, "hang_when_mutated", {score: f"{score}        {code}\n"}, prefix="import time\n")
    outcome = run_cli("mutate", TINY_SPEC, model, "--format", "json", "--timeout", 15)
    assert outcome.code == 2, outcome.text
    assert re.search(r"mutant \d+/\d+ \(component\.constant:(encoder|head)\) did not finish within --timeout 15 s",
                     outcome.stderr), outcome.stderr
    assert f"{model}:{line_of(model, code)}" in outcome.stderr


def test_train_bounds_its_gate_and_leaves_no_run_behind(tmp_path, train_config):
    forward = "    def forward(self, x):\n"
    model = model_variant(tmp_path, "hang_train", {forward: forward + f"        {HANG}\n"}, base=TRAIN_MODEL)
    run_dir = tmp_path / "run"
    outcome = run_cli("train", TRAIN_SPEC, model, "--config", train_config, "--out", run_dir, "--timeout", SHORT)
    assert outcome.code == 2, outcome.text
    assert f"the design check before training did not finish within --timeout {SHORT} s" in outcome.stderr
    assert f"{model}:{line_of(model, HANG)}" in outcome.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("command", ["check", "init", "graph", "mutate", "train"])
def test_the_timeout_has_a_documented_default(command):
    from alignguard.cli.timeout import CHECK_TIMEOUT_S

    help_text = " ".join(run_cli(command, "--help").stdout.split())
    assert help_text.count("--timeout") == 1 and f"[default: {CHECK_TIMEOUT_S:g}" in help_text


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_prints_from_the_model_file_go_to_stderr(tmp_path, fmt):
    model = model_variant(tmp_path, "chatty", {FORWARD: '        print("hello from forward")\n'
                                               '        import os; os.write(1, b"raw fd write\\n")\n' + FORWARD},
                          prefix='print("hello at import")\n')
    outcome = run_cli("check", TINY_SPEC, model, "--format", fmt)
    assert outcome.code == 0, outcome.text
    document = json.loads(outcome.stdout)  # stdout is the report alone
    assert document
    assert "hello at import" in outcome.stderr and "hello from forward" in outcome.stderr
    assert "raw fd write" in outcome.stderr


def test_an_exception_in_forward_is_located(tmp_path):
    model = forward_doing(tmp_path, "raising", "raise ValueError('boom')")
    outcome = run_cli("check", TINY_SPEC, model)
    assert outcome.code == 2 and "boom" in outcome.stderr and f"{model}:" in outcome.stderr
    assert_no_traceback(outcome)


@pytest.mark.parametrize("command", [("init", "{model}", "--output", "{tmp}/spec.yaml"),
                                     ("graph", "{spec}", "{model}", "--output", "{tmp}/g.dot"),
                                     ("mutate", "{spec}", "{model}", "--json")])
def test_every_command_that_runs_model_code_isolates_it(tmp_path, command):
    model = forward_doing(tmp_path, "exiting", "import sys; sys.exit(0)")
    args = [part.format(model=model, spec=TINY_SPEC, tmp=tmp_path) for part in command]
    outcome = run_cli(*args)
    assert outcome.code == 2 and "exited before" in outcome.stderr and "sys.exit(0)" in outcome.stderr
    assert not (tmp_path / "spec.yaml").exists()


def test_internal_errors_are_exit_2_with_a_traceback_only_under_debug(monkeypatch):
    from alignguard.cli import check

    def broken(*args, **kwargs):
        raise RuntimeError("an alignguard bug")

    monkeypatch.setattr(check.ReportPlan, "parse", broken)
    quiet = run_cli("check", TINY_SPEC, TINY_SPEC)
    assert quiet.code == 2 and "internal error: RuntimeError: an alignguard bug" in quiet.stderr
    assert_no_traceback(quiet)
    loud = run_cli("--debug", "check", TINY_SPEC, TINY_SPEC)
    monkeypatch.delenv("ALIGNGUARD_DEBUG", raising=False)
    assert loud.code == 2 and "Traceback (most recent call last)" in loud.stderr
