"""probe.modulation and probe.swap_invariance inside the whole check: the encoder's computed (not replayed)
calls and rows, each probe's seconds, and its figures, on CMDN and the large models (ResNet-50 layout,
12-layer transformer of large_models.py).

Each case is one `alignguard.api.run_check` in process (the probes then find what earlier checks left
captured, as in a real run); the counts are exact at any load, the seconds are not. With
`--compare OTHER_CHECKOUT` the same script runs there too (a subprocess with that checkout first on
PYTHONPATH) and the two are printed side by side, with the largest slope difference of modulation and
whether every verdict of the check agrees; exit 1 when a verdict differs.

    python benchmarks/probe_contexts.py [--only cmdn,resnet50,transformer] [--compare /work/main]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBES = {"modulation": "alignguard.checks.probes.modulation:ModulationProbeCheck",
          "swap": "alignguard.checks.probes.swap:SwapProbeCheck"}


def measure(names: list[str]) -> dict:
    """{case: {probe: {forwards, rows, seconds, results, slopes}, verdicts}} for this checkout."""
    import importlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import real_models

    from alignguard import api

    folder = Path(tempfile.mkdtemp(prefix="probe-contexts-"))
    cases = {c.name: c for c in real_models.all_cases(folder, 64, 64, 4)}
    stats: dict = {}
    current: list = [None]

    def counted_run(original, probe):
        def run(self, context):
            encoder = context.model.get_submodule("encoder")
            if not hasattr(encoder, "_plain_forward"):  # an instance forward: a replayed call never reaches it
                encoder._plain_forward = encoder.forward

                def counted(*args, **kwargs):
                    if current[0] is not None:
                        stats[current[0]]["forwards"] += 1
                        stats[current[0]]["rows"] += len(args[0]) if args else 0
                    return encoder._plain_forward(*args, **kwargs)
                encoder.forward = counted
            stats[probe] = {"forwards": 0, "rows": 0}
            current[0], start = probe, time.perf_counter()
            try:
                results = list(original(self, context))
            finally:
                stats[probe]["seconds"] = time.perf_counter() - start
                current[0] = None
            stats[probe]["results"] = [(r.status.value, r.found) for r in results]
            stats[probe]["slopes"] = [r.details.get("slopes") for r in results if "slopes" in r.details]
            return iter(results)
        return run

    for probe, where in PROBES.items():
        module, name = where.split(":")
        cls = getattr(importlib.import_module(module), name)
        cls.run = counted_run(cls.run, probe)
    out = {}
    for name in names:
        stats.clear()
        report = api.run_check(cases[name].spec, cases[name].model)
        out[name] = {**{k: dict(v) for k, v in stats.items()},
                     "verdicts": sorted((r.check_id, r.element, r.status.value) for r in report.results)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="cmdn,resnet50,transformer")
    parser.add_argument("--compare", help="another checkout, measured the same way in a subprocess")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # the subprocess's answer
    args = parser.parse_args()
    names = args.only.split(",")
    if args.json:
        Path(args.json).write_text(json.dumps(measure(names)))
        return 0
    print(f"load average {os.getloadavg()[0]:.1f}")
    arms = {"this": None, "other": args.compare} if args.compare else {"this": None}
    figures = {}
    for arm, checkout in arms.items():
        with tempfile.NamedTemporaryFile(suffix=".json") as answer:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [checkout or str(ROOT),
                                                                             os.environ.get("PYTHONPATH")]))}
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--only", args.only, "--json", answer.name],
                           env=env, check=True)
            figures[arm] = json.loads(Path(answer.name).read_text())
    differ = False
    for name in names:
        for probe in PROBES:
            for arm in arms:
                s = figures[arm][name].get(probe)
                if s:
                    print(f"{name:12s} {probe:10s} {arm:5s}: encoder {s['forwards']} calls, {s['rows']} rows, "
                          f"{s['seconds']:.3f} s, {[r[0] for r in s['results']]}")
        if args.compare:
            this, other = figures["this"][name], figures["other"][name]
            if this.get("modulation") and other.get("modulation"):
                gap = max(abs(a - b) for ra, rb in zip(this["modulation"]["slopes"][0], other["modulation"]["slopes"][0])
                          for a, b in zip(ra, rb))
                print(f"{name:12s} modulation slopes: largest difference {gap:.3g}")
            same = this["verdicts"] == other["verdicts"]
            differ |= not same
            print(f"{name:12s} every verdict of the check the same: {same}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
