"""What the check's start-up relies on, guarded without timing anything (docs/benchmarks.md §1).

A check of CMDN costs ~1.3x a bare training step's process only while nothing on its path pulls
in torch's compiler stack (sympy alone is ~0.9 s to import; torch.broadcast_shapes, vmapped or
`grad_outputs` backward passes, torch.export and dynamo all import it) and while torch's OpenMP
threads sleep rather than spin between the check's thousands of small operators.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Heavy modules `import torch` does not load and a check must not load either.
NEVER_IMPORTED = ("sympy", "torch._dynamo", "torch._inductor", "torch._functorch.aot_autograd",
                  "torch.fx.experimental.symbolic_shapes", "torch.utils._sympy", "scipy", "sklearn",
                  "matplotlib", "pandas")

WORKER_MODULES = """
import json, sys
from alignguard.api import run_check
from alignguard.cli.heap import import_torch_and_freeze_heap
from alignguard.isolation import run_isolated

def check_then_modules(spec, model):
    return run_check(spec, model).exit_code("error"), sorted(sys.modules)

import_torch_and_freeze_heap(sleeping_threads=True)
loaded_by_torch = set(sys.modules)
code, modules = run_isolated(check_then_modules, sys.argv[1], sys.argv[2])
print("RESULT=" + json.dumps({"code": code, "by_torch": sorted(loaded_by_torch), "after": modules}))
"""


def _worker_modules(spec: Path, model: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER_MODULES, str(spec), str(model)], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.split("RESULT=")[-1])


def test_a_full_check_imports_no_compiler_stack_in_its_worker():
    """CMDN's spec runs every check family (structure, identifiability, probes, losses, gradients)."""
    result = _worker_modules(ROOT / "specs" / "cmdn.yaml", ROOT / "models" / "cmdn.py")
    assert result["code"] == 0
    assert not [m for m in NEVER_IMPORTED if m in result["by_torch"]], "torch itself now imports one: update the list"
    loaded = [m for m in NEVER_IMPORTED if m in result["after"]]
    assert not loaded, f"a check imported {loaded}: find the API that pulls it in (python -X importtime)"


@pytest.mark.slow
def test_a_failing_check_imports_no_compiler_stack_either():
    """The legacy model fails checks: the failure paths (messages, evidence) stay as light."""
    result = _worker_modules(ROOT / "specs" / "cmdn.yaml", ROOT / "models" / "legacy_energy.py")
    assert result["code"] == 1
    assert not [m for m in NEVER_IMPORTED if m in result["after"]]


def _cli_check_env(tmp_path: Path, tiny_spec: Path, tiny_model: Path, env: dict) -> str:
    """Standard error of `python -m alignguard check` on a model that prints its OpenMP variables."""
    model = tmp_path / "tiny_policy.py"
    model.write_text(tiny_model.read_text() + (
        "\n\nimport os as _os\n_build = build_model\n\n\ndef build_model():\n"
        "    print('OMP_WAIT_POLICY=' + _os.environ.get('OMP_WAIT_POLICY', '(unset)'))\n"
        "    print('GOMP_SPINCOUNT=' + _os.environ.get('GOMP_SPINCOUNT', '(unset)'))\n"
        "    return _build()\n"))
    result = subprocess.run([sys.executable, "-m", "alignguard", "check", str(tiny_spec), str(model)],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stderr  # the model's prints go to standard error


def test_the_cli_check_sets_torchs_thread_wait_but_keeps_the_users_choice(tmp_path, tiny_spec, tiny_model):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    chosen = _cli_check_env(tmp_path, tiny_spec, tiny_model, env)
    assert "OMP_WAIT_POLICY=PASSIVE" in chosen or "GOMP_SPINCOUNT=30000" in chosen  # which one: the load
    mine = _cli_check_env(tmp_path, tiny_spec, tiny_model, {**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert "OMP_WAIT_POLICY=ACTIVE" in mine and "GOMP_SPINCOUNT=(unset)" in mine
    mine = _cli_check_env(tmp_path, tiny_spec, tiny_model, {**env, "GOMP_SPINCOUNT": "7"})
    assert "OMP_WAIT_POLICY=(unset)" in mine and "GOMP_SPINCOUNT=7" in mine


def test_the_wait_policy_follows_the_load():
    """A short spin when no other task is ready to run, sleeping threads beside any busy one (a spinning
    thread there holds the core the working one needs); the user's variables win."""
    from alignguard.cli.heap import wait_policy

    assert wait_policy({}, 0) == {"GOMP_SPINCOUNT": "30000"}
    assert wait_policy({}, 1) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}, 0) == {}
    assert wait_policy({"GOMP_SPINCOUNT": "0"}, 9) == {}


def test_a_busy_process_beside_the_check_is_counted():
    """The instantaneous count sees a busy loop started a moment ago (the 1-minute average would not)."""
    from alignguard.cli.heap import others_runnable

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        counts = [others_runnable() for _ in range(10)]
    finally:
        busy.kill()
        busy.wait()
    assert min(counts) >= 1


def test_the_wait_policy_is_set_before_torch_loads_libgomp():
    """libgomp reads its variables once, when torch loads it: set afterwards they would do nothing."""
    script = ("import os, sys\nos.environ.pop('OMP_WAIT_POLICY', None)\nos.environ.pop('GOMP_SPINCOUNT', None)\n"
              "from alignguard.cli.heap import import_torch_and_freeze_heap\n"
              "import_torch_and_freeze_heap(sleeping_threads=True)\n"
              "print(os.environ.get('OMP_WAIT_POLICY') or os.environ.get('GOMP_SPINCOUNT'))\n"
              "import torch\n")  # already imported: the call above imported it after setting the variable
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() in ("PASSIVE", "30000")
    late = ("import os, torch\nos.environ.pop('OMP_WAIT_POLICY', None)\nos.environ.pop('GOMP_SPINCOUNT', None)\n"
            "from alignguard.cli.heap import import_torch_and_freeze_heap\n"
            "import_torch_and_freeze_heap(sleeping_threads=True)\n"
            "print(os.environ.get('OMP_WAIT_POLICY') or os.environ.get('GOMP_SPINCOUNT'))\n")
    out = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None"  # torch was already loaded: setting it would only mislead
