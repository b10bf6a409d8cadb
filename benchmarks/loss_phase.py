"""The loss phase (the gradient room: measurement, loss.* and gradient.* checks) in process, on the
large models: model forwards and backward passes per phase, and phase seconds, side by side with
another checkout.

    python benchmarks/loss_phase.py [--only resnet50,transformer,deepsea] [--repeats N]
                                    [--compare OTHER_CHECKOUT] [--folder DIR]

Counts are exact whatever the machine's load: a forward is a call of the model's root module, a
backward pass a call of `torch.autograd.backward` / `torch.autograd.grad`, each charged to the
innermost phase `CheckContext.timed` had open. Seconds are in-process `run_checks` time of the
gradient room (one thread, so that two checkouts compare on a shared machine); each checkout runs
in its own subprocess, alternated, and the median is printed, with the process's peak RSS (build,
measurement and checks: the loss room's own peak).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("resnet50", "transformer", "deepsea")

WORKER = r"""
import json, sys, time
import alignguard
assert alignguard.__file__.startswith(sys.argv[3]), (alignguard.__file__, sys.argv[3])
from contextlib import contextmanager
import torch
from alignguard import api
from alignguard.checks.catalogue import ROOMS
from alignguard.checks.context import CheckContext

spec_path, model_path = sys.argv[1:3]
stack, counts = ["(open)"], {}
timed = CheckContext.timed

@contextmanager
def counted_timed(self, phase):
    stack.append(phase)
    try:
        with timed(self, phase):
            yield
    finally:
        stack.pop()

def bump(kind):
    key = f"{stack[-1]}|{kind}"
    counts[key] = counts.get(key, 0) + 1

def counting(function):
    def wrapper(*args, **kwargs):
        bump("backward")
        return function(*args, **kwargs)
    return wrapper

CheckContext.timed = counted_timed
torch.autograd.backward = counting(torch.autograd.backward)
torch.autograd.grad = counting(torch.autograd.grad)
spec, model_file = api.load(spec_path, model_path)
context = api.open_context(spec, model_file)
context.model.register_forward_hook(lambda *_: bump("forward"))
start = time.perf_counter()
report = api.run_checks(context, checks=ROOMS[1].checks)
seconds = time.perf_counter() - start
verdicts = sorted(f"{r.check_id} {r.element}: {r.status.value}" for r in report.results)
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
print(json.dumps({"seconds": seconds, "phases": context.timings, "counts": counts, "verdicts": verdicts,
                  "peak_mib": peak}))
"""


def run(checkout: Path, spec: Path, model: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    # cwd: `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH
    done = subprocess.run([sys.executable, "-c", WORKER, str(spec.resolve()), str(model.resolve()), str(checkout)], env=env,
                          cwd=checkout, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: the loss phase failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--compare", type=Path, default=None, help="another checkout of alignguard")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/alignguard-loss-phase"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import real_models

    args.folder.mkdir(parents=True, exist_ok=True)
    cases = {c.name: c for c in real_models.all_cases(args.folder, 64, 64, 4)}
    arms = {"this": ROOT, **({"compare": args.compare.resolve()} if args.compare else {})}
    print(f"load average {os.getloadavg()[0]:.1f}; arms: " + ", ".join(f"{k}={v}" for k, v in arms.items()))
    for name in args.only.split(","):
        case = cases[name]
        runs: dict[str, list[dict]] = {arm: [] for arm in arms}
        for i in range(args.repeats):
            for arm in (list(arms) if i % 2 == 0 else list(reversed(arms))):
                runs[arm].append(run(arms[arm], case.spec, case.model))
        print(f"\n== {name}")
        keys = sorted({k for arm in runs for k in runs[arm][0]["counts"]})
        print(f"  {'phase|kind':40s}" + "".join(f"{arm:>10s}" for arm in arms))
        for key in keys:
            print(f"  {key:40s}" + "".join(f"{runs[arm][0]['counts'].get(key, 0):>10d}" for arm in arms))
        for phase in ("gradients", "loss.descent"):
            print(f"  {phase + ' s (median)':40s}" + "".join(
                f"{statistics.median(r['phases'].get(phase, 0.0) for r in runs[arm]):>10.2f}" for arm in arms))
        print(f"  {'gradient room s (median)':40s}" + "".join(
            f"{statistics.median(r['seconds'] for r in runs[arm]):>10.2f}" for arm in arms))
        print(f"  {'process peak RSS MiB (median)':40s}" + "".join(
            f"{statistics.median(r['peak_mib'] for r in runs[arm]):>10.0f}" for arm in arms))
        if len(arms) > 1:
            same = runs["this"][0]["verdicts"] == runs["compare"][0]["verdicts"]
            print(f"  verdicts {'identical' if same else 'DIFFER'}")
            if not same:
                for arm in arms:
                    print(f"    {arm}: {runs[arm][0]['verdicts']}")


if __name__ == "__main__":
    main()
