"""The console script's worker, forked before the CLI's imports (isolation.prestart, cli/app.py).

The in-process tests (run_cli, a CliRunner) never prestart: only the real entry point does. These
run `python -m alignguard` as a user does, so exits, hangs, prints and usage errors go through the
prestarted worker, and check that the CLI process itself never imports torch.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from alignguard.cli.app import runs_model_code
from alignguard.isolation import worker
from alignguard.isolation.worker import prestart, prestarted, run_isolated
from tests.faults.conftest import ROOT, TINY_MODEL, TINY_SPEC, model_variant

FORWARD = "        h = self.encoder(x)\n"


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "alignguard", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def forward_doing(tmp_path, name: str, code: str):
    return model_variant(tmp_path, name, {FORWARD: f"        {code}\n{FORWARD}"})


@pytest.mark.parametrize("argv, expected", [
    (["check", "s.yaml", "m.py"], True),
    (["--debug", "check", "--format", "json", "s.yaml", "m.py"], True),
    (["init", "m.py"], True),
    (["graph", "s.yaml", "m.py", "-o", "g.svg"], True),
    (["check", "--help"], False),
    (["--help"], False),
    (["--version"], False),
    (["schema"], False),
    (["train", "s.yaml", "m.py"], False),  # train and mutate fork their own workers, as before
    (["mutate", "s.yaml", "m.py"], False),
    ([], False),
])
def test_only_commands_that_run_model_code_prestart_a_worker(argv, expected):
    assert runs_model_code(argv) is expected


def test_a_check_through_the_console_script_is_judged_in_the_prestarted_worker():
    result = cli("check", TINY_SPEC, TINY_MODEL, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "aligned"
    assert report["timings"]["import torch"] > 0  # timed by the worker, reported by the parent


def test_the_cli_process_itself_never_imports_torch():
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('TORCH_IN_CLI=' + str('torch' in sys.modules), file=sys.stderr))\n"
              "sys.argv = ['alignguard', 'check', sys.argv[1], sys.argv[2], '--quiet']\n"
              "from alignguard.cli.app import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", script, str(TINY_SPEC), str(TINY_MODEL)], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert "TORCH_IN_CLI=False" in result.stderr, result.stderr


@pytest.mark.parametrize("code, how", [("import sys; sys.exit(0)", "sys.exit(0)"),
                                       ("import os; os._exit(0)", "os._exit(0)")])
def test_an_exit_in_the_prestarted_worker_is_exit_2_never_a_verdict(tmp_path, code, how):
    model = forward_doing(tmp_path, "exits", code)
    result = cli("check", TINY_SPEC, model, "--format", "json")
    assert result.returncode == 2, result.stderr
    assert "exited before the check finished" in result.stderr and how in result.stderr
    assert json.loads(result.stdout)["verdict"] != "aligned"
    assert "Traceback" not in result.stderr


def test_an_exit_at_import_in_the_prestarted_worker_names_the_line(tmp_path):
    model = model_variant(tmp_path, "import_exit", {}, prefix="import sys\nsys.exit(0)\n")
    result = cli("check", TINY_SPEC, model)
    assert result.returncode == 2 and "importing the model file" in result.stderr, result.stderr
    assert f"{model}:2" in result.stderr


def test_a_hang_in_the_prestarted_worker_ends_at_the_timeout(tmp_path):
    model = forward_doing(tmp_path, "hang", "import time; time.sleep(1000)")
    started = time.monotonic()
    result = cli("check", TINY_SPEC, model, "--timeout", "20")
    assert result.returncode == 2, result.stderr
    assert "did not finish within --timeout 20 s" in result.stderr and "(in forward)" in result.stderr
    assert time.monotonic() - started < 200


def test_prints_of_the_prestarted_worker_go_to_stderr(tmp_path):
    model = model_variant(tmp_path, "prints", {"def build_model():\n": "def build_model():\n    print('HELLO')\n"})
    result = cli("check", TINY_SPEC, model, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "aligned" and "HELLO" in result.stderr


def test_a_usage_error_before_the_job_ends_the_unused_worker_too(tmp_path):
    result = cli("check", TINY_SPEC, TINY_MODEL, "--fail-on", "sometimes", timeout=60)
    assert result.returncode == 2 and "--fail-on must be" in result.stderr
    result = cli("init", TINY_MODEL, "--output", TINY_SPEC, timeout=60)  # refuses to overwrite an input
    assert result.returncode == 2 and "Traceback" not in result.stderr


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == 0


def test_an_unused_prestarted_worker_is_ended_and_reaped(tmp_path):
    marker = tmp_path / "warmed"
    prestart(lambda: marker.write_text(str(os.getpid())), "warm-up")
    try:
        assert prestarted()
        pid = worker._prestarted.pid
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == str(pid) and _alive(pid)
    finally:
        worker._discard_prestarted()
    assert not prestarted() and not _alive(pid)


def _pid_and_double(x):
    return os.getpid(), 2 * x


@contextmanager
def real_streams():
    """sys.stdout/stderr on the process's own fd 1 and 2 (pytest's capture puts other files there, and
    sets them again before each test phase): a prestarted worker writes to the descriptors it inherited,
    so it takes a job only when those are the ones asked for."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), write_through=True) for fd in (1, 2))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def test_the_prestarted_worker_takes_the_first_job_and_reports_its_warm_up():
    prestart(lambda: time.sleep(0.05), "warm-up")
    pid = worker._prestarted.pid
    phases: dict[str, float] = {}
    try:
        with real_streams():
            assert run_isolated(_pid_and_double, 21, timings=phases) == (pid, 42)
            assert phases["warm-up"] >= 0.05 and not prestarted()
            other, doubled = run_isolated(_pid_and_double, 1)  # later jobs: a worker forked then
            assert other != pid and doubled == 2
    finally:
        worker._discard_prestarted()


def test_a_job_that_cannot_cross_the_pipe_runs_in_a_worker_forked_for_it():
    prestart(lambda: None, "warm-up")
    pid = worker._prestarted.pid
    unpicklable = lambda: os.getpid()  # noqa: E731  (a lambda cannot be pickled)
    try:
        with real_streams():
            assert run_isolated(unpicklable) not in (pid, os.getpid())
            assert not prestarted() and not _alive(pid)
    finally:
        worker._discard_prestarted()


def test_a_worker_whose_streams_are_not_the_ones_asked_for_is_replaced(monkeypatch):
    prestart(lambda: None, "warm-up")
    pid = worker._prestarted.pid
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a test runner's in-memory stream: relayed
    try:
        assert run_isolated(_pid_and_double, 2)[0] != pid
        assert not _alive(pid)
    finally:
        worker._discard_prestarted()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_worker_that_sent_its_verdict_is_not_waited_for_but_reaped_by_the_next_call():
    first = run_isolated(os.getpid)
    assert first != os.getpid()
    if first not in worker._exiting:
        pytest.skip("the worker had already ended when its verdict was read (a busy machine): nothing to reap")
    deadline = time.monotonic() + 60
    while not _zombie(first) and time.monotonic() < deadline:  # its exit goes on without us
        time.sleep(0.05)
    assert _zombie(first)  # ended, not yet reaped
    run_isolated(os.getpid)
    assert first not in worker._exiting and not Path(f"/proc/{first}").exists()
