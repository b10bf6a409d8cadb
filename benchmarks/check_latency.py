"""Latency and peak memory of `alignguard check` against the cheapest thing that touches the model.

The baseline is a bare `python -c` that imports torch, imports the model file by path, builds the
model, draws the spec's example batch and runs one forward + backward of the summed loss terms:
what any script that uses the model pays anyway. The check runs the real CLI,
`alignguard check SPEC MODEL` (whose model worker is forked as the command starts and imports torch
while the CLI parses: alignguard/cli/app.py). Both are fresh subprocesses, alternated (ABBA order) in one run so
that machine load hits both alike; the figures are medians, peak RSS comes from wait4's rusage.
Also times `alignguard --help` and `alignguard schema` and proves, with `python -X importtime`,
that neither imports torch.

    python benchmarks/check_latency.py [--repeats 5] [--spec specs/cmdn.yaml] [--model models/cmdn.py]
                                      [--quick] [--strict] [--compare OTHER_CHECKOUT] [--no-compile]
                                      [--passive-baseline]

--compare times a third arm in the same alternation: the `check` of another checkout of alignguard
(PYTHONPATH=OTHER_CHECKOUT), e.g. main before a change, so that a change's own cost is measured
side by side under the same load (the model worker's cost was measured this way).

--passive-baseline adds a fourth arm: the same baseline with OMP_WAIT_POLICY=PASSIVE, the setting
the check's CLI uses (alignguard/cli/heap.py). The target is against the plain baseline (what a
user's script pays); this arm shows how much of the ratio is the thread policy rather than work.

Before timing, the alignguard package (and --compare's) is compiled to bytecode with compileall,
as `pip install` does: where PYTHONDONTWRITEBYTECODE is set (this project's sandbox sets it) and
the package is an editable checkout, every alignguard module would otherwise be compiled from
source in every run (0.2-0.3 s of CPU, which no installed copy pays). --no-compile skips it.

Exits 0 (with --strict: 1 when the check exceeds 1.3x the baseline's time or --help/schema imports
torch or takes a second or more); 2 when a command fails to run (exit code other than 0/1).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
TIME_TARGET = 1.3  # issues 18 and 20: check wall time <= 1.3x the baseline (1.5x before them)
CLI_TARGET_S = 1.0

# What any script using the model pays: torch, the model file, one training-mode forward and
# backward (at step 1000, where every CMDN loss term has a positive weight).
BASELINE = r"""
import importlib.util, inspect, sys
from pathlib import Path
import torch
model_path, batch_size, seed = Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, str(model_path.parent))
spec = importlib.util.spec_from_file_location("model_under_test", model_path)
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.build_model().train()
batch = module.example_batch(batch_size, seed)
names = [n for n in inspect.signature(model.forward).parameters if n in batch]
outputs = model(**{n: batch[n] for n in names})
total = sum(module.loss_terms(model, batch, outputs, 1000).values())
total.backward()
"""


@dataclass
class Run:
    seconds: float
    max_rss_mib: float
    cpu_seconds: float
    returncode: int
    stdout: str
    stderr: str


def run(argv: list[str], cwd: Path = ROOT) -> Run:
    """One subprocess, its wall time and output (no memory figure: see run_measured)."""
    start = time.perf_counter()
    process = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return Run(elapsed, float("nan"), float("nan"), process.returncode, process.stdout, process.stderr)


def run_measured(argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> Run:
    """Like `run`, but reaps the child with os.wait4 to read its peak RSS (Linux: KiB; the larger of the
    process and the children it reaped, so the check's model worker counts) and CPU time (both summed)."""
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        process = subprocess.Popen(argv, cwd=cwd, stdout=sink, stderr=subprocess.PIPE, text=True, env=env)
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, process.returncode, "", stderr)


def cli(*args: str) -> list[str]:
    """The installed console script when there is one, else `python -m alignguard`."""
    script = Path(sys.executable).with_name("alignguard")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "alignguard", *args]


def require(result: Run, allowed: tuple[int, ...], what: str) -> None:
    if result.returncode not in allowed:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{what} exited {result.returncode} (expected {allowed}):\n{tail}")


def batch_settings(spec_path: Path) -> tuple[int, int]:
    from alignguard.spec.loader import load_spec

    entry = load_spec(spec_path).entry_points
    return entry.batch_size, entry.seed


def torch_imported(argv_tail: list[str]) -> bool:
    """Whether `python -X importtime -m alignguard ARGS` imports any torch module."""
    result = run([sys.executable, "-X", "importtime", "-m", "alignguard", *argv_tail])
    require(result, (0,), "alignguard " + " ".join(argv_tail))
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return any(name == "torch" or name.startswith("torch.") for name in modules)


def compile_package(checkout: Path) -> None:
    """Write checkout/alignguard's bytecode (__pycache__, ignored by git), as an install would."""
    result = run([sys.executable, "-m", "compileall", "-q", str(checkout / "alignguard")])
    require(result, (0,), f"compileall {checkout / 'alignguard'}")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "cmdn.yaml")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cmdn.py")
    parser.add_argument("--repeats", type=int, default=5, help="Pairs of (baseline, check) runs.")
    parser.add_argument("--quick", action="store_true", help="2 pairs and 2 CLI runs (a smoke run).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a target is missed.")
    parser.add_argument("--compare", type=Path, default=None,
                        help="Another alignguard checkout whose check runs in the same alternation.")
    parser.add_argument("--passive-baseline", action="store_true",
                        help="Also time the baseline with OMP_WAIT_POLICY=PASSIVE (the check's thread policy).")
    parser.add_argument("--no-compile", action="store_true",
                        help="Do not compile the package(s) to bytecode first (see the module docstring).")
    args = parser.parse_args()
    repeats = 2 if args.quick else max(1, args.repeats)
    spec, model = args.spec.resolve(), args.model.resolve()
    batch_size, seed = batch_settings(spec)

    import torch

    print(f"machine: {platform.node()}, {os.cpu_count()} CPU cores (nproc), {platform.machine()}, "
          f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    if not args.no_compile:
        for checkout in (ROOT, *([args.compare.resolve()] if args.compare else [])):
            compile_package(checkout)
    print(f"bytecode: {'as found (--no-compile)' if args.no_compile else 'alignguard compiled first (compileall)'}; "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    check_argv = cli("check", str(spec), str(model))
    print(f"check:    {' '.join([Path(check_argv[0]).name, *check_argv[1:]])}")
    print(f"baseline: python -c '<import torch; build_model(); example_batch({batch_size}, {seed}); "
          "forward; sum(loss_terms).backward()>'")

    baseline_argv = [sys.executable, "-c", BASELINE, str(model), str(batch_size), str(seed)]
    arms = {"baseline": (baseline_argv, None, (0,)), "check": (check_argv, None, (0, 1))}
    if args.compare is not None:
        other = {**os.environ, "PYTHONPATH": str(args.compare.resolve())}
        arms["compare"] = ([sys.executable, "-m", "alignguard", "check", str(spec), str(model)], other, (0, 1))
        print(f"compare:  PYTHONPATH={args.compare.resolve()} python -m alignguard check ...")
    if args.passive_baseline:
        arms["baseline*"] = (baseline_argv, {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, (0,))
        print("baseline*: the baseline with OMP_WAIT_POLICY=PASSIVE")
    runs: dict[str, list[Run]] = {name: [] for name in arms}
    verdicts = set()
    for i in range(repeats):
        order = list(arms) if i % 2 == 0 else list(arms)[::-1]  # ABBA: no order bias
        for which in order:
            argv, env, allowed = arms[which]
            result = run_measured(argv, env=env)
            require(result, allowed, which)
            if not which.startswith("baseline"):
                verdicts.add(result.returncode)
            runs[which].append(result)

    figures = {name: (median([r.seconds for r in rs]), median([r.cpu_seconds for r in rs]),
                      median([r.max_rss_mib for r in rs])) for name, rs in runs.items()}
    print(f"\n{repeats} alternated rounds, medians (wall min-max)")
    print(f"{'':10} {'wall s':>8} {'range':>13} {'CPU s':>7} {'peak RSS MiB':>13}")
    for name, rs in runs.items():
        wall, cpu, rss = figures[name]
        print(f"{name:10} {wall:8.2f} {spread([r.seconds for r in rs]):>13} {cpu:7.2f} {rss:13.0f}")
    (b_time, b_cpu, b_rss), (c_time, c_cpu, c_rss) = figures["baseline"], figures["check"]
    time_ratio, rss_ratio = c_time / b_time, c_rss / b_rss
    print(f"ratio check/baseline: wall time {time_ratio:.2f}x (target <= {TIME_TARGET}x), CPU time "
          f"{c_cpu / b_cpu:.2f}x, peak RSS {rss_ratio:.2f}x")
    if "compare" in figures:
        o_time, o_cpu, o_rss = figures["compare"]
        print(f"ratio check/compare:  wall time {c_time / o_time:.2f}x, CPU time {c_cpu / o_cpu:.2f}x, peak RSS "
              f"{c_rss / o_rss:.2f}x (compare/baseline: {o_time / b_time:.2f}x)")
    if "baseline*" in figures:
        p_time, p_cpu, p_rss = figures["baseline*"]
        print(f"ratio check/baseline*: wall time {c_time / p_time:.2f}x, CPU time {c_cpu / p_cpu:.2f}x, peak RSS "
              f"{c_rss / p_rss:.2f}x (baseline*/baseline: wall {p_time / b_time:.2f}x, CPU {p_cpu / b_cpu:.2f}x)")
    print(f"check exit codes seen: {sorted(verdicts)} (0 aligned, 1 findings)")

    cli_runs = 2 if args.quick else max(3, repeats)
    python_floor = median([run([sys.executable, "-c", "pass"]).seconds for _ in range(cli_runs)])
    help_runs = [run(cli("--help")) for _ in range(cli_runs)]
    schema_runs = [run(cli("schema")) for _ in range(cli_runs)]
    for result, name in ((help_runs[0], "alignguard --help"), (schema_runs[0], "alignguard schema")):
        require(result, (0,), name)
    help_time = median([r.seconds for r in help_runs])
    schema_time = median([r.seconds for r in schema_runs])
    help_torch, schema_torch = torch_imported(["--help"]), torch_imported(["schema"])
    print(f"\nCLI start-up, median of {cli_runs} (python -c pass: {python_floor:.2f} s)")
    print(f"alignguard --help   {help_time:.2f} s   imports torch: {'YES' if help_torch else 'no'}")
    print(f"alignguard schema   {schema_time:.2f} s   imports torch: {'YES' if schema_torch else 'no'}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    missed = [name for name, bad in (
        (f"check time {time_ratio:.2f}x > {TIME_TARGET}x", time_ratio > TIME_TARGET),
        ("--help imports torch", help_torch), ("schema imports torch", schema_torch),
        (f"--help {help_time:.2f} s >= {CLI_TARGET_S} s", help_time >= CLI_TARGET_S),
        (f"schema {schema_time:.2f} s >= {CLI_TARGET_S} s", schema_time >= CLI_TARGET_S)) if bad]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
