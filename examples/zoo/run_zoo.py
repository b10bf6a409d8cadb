"""Run `alignguard check` over every zoo design and broken variant; print the table.

    python examples/zoo/run_zoo.py [--json FILE] [DESIGN ...]

A correct model passes when it exits 0 with no waiver; a broken variant is caught when it exits 1
and one of the checks its manifest entry names (`catch`) fails. Each run is a subprocess, so every
model file imports fresh; `--in-process` runs them through the Python API in one process instead
(seconds, not minutes: what tests/zoo's fast test does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ruamel.yaml import YAML

ZOO = Path(__file__).resolve().parent


def manifest() -> dict:
    return YAML(typ="safe").load((ZOO / "zoo.yaml").read_text())["designs"]


def run_check(spec: Path, model: Path) -> dict:
    command = [sys.executable, "-m", "alignguard", "check", str(spec), str(model), "-f", "json"]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"exit": done.returncode, "failed": [], "waived": 0, "error": (done.stderr or done.stdout)[-400:]}
    failed = sorted({r["check_id"] for r in report["results"] if r["status"] in ("fail", "error")})
    waived = sum(r["status"] == "waived" for r in report["results"])
    return {"exit": done.returncode, "failed": failed, "waived": waived, "error": report.get("error")}


def check_in_process(spec: Path, model: Path, check_ids: list[str] | None = None) -> dict:
    """The same outcome as `run_check`, through the Python API in this process; with `check_ids`, only
    the checks that own those ids run (a broken variant judged by its rule's checks alone)."""
    from alignguard.api import load, open_context, run_checks
    from alignguard.checks.catalogue import CHECKS
    from alignguard.errors import AlignguardError

    checks = None if check_ids is None else tuple(c for c in CHECKS if set(c.ids) & set(check_ids))
    try:
        loaded, model_file = load(spec, model)
        report = run_checks(open_context(loaded, model_file), spec_path=str(spec), checks=checks)
    except AlignguardError as exc:
        return {"exit": 2, "failed": [], "waived": 0, "error": str(exc)[-400:]}
    failed = sorted({r.check_id for r in report.results if r.status.value in ("fail", "error")})
    waived = sum(r.status.value == "waived" for r in report.results)
    return {"exit": report.exit_code(), "failed": failed, "waived": waived, "error": None}


def judge(design: dict, in_process: bool = False) -> dict:
    """The correct model runs every check; a broken variant runs every check in a subprocess (the CLI's
    exit code), or in process only the checks its rule names (`catch`), which is what decides it."""
    spec = ZOO / design["spec"]
    correct = (check_in_process if in_process else run_check)(spec, ZOO / design["model"])
    rows = []
    for path, entry in design["broken"].items():
        outcome = (check_in_process(spec, ZOO / path, entry["catch"]) if in_process
                   else run_check(spec, ZOO / path))
        # a check that also fails the correct model is a false alarm there, not evidence here
        named = [c for c in outcome["failed"] if c in entry["catch"] and c not in correct["failed"]]
        rows.append({"variant": Path(path).stem, "rule": entry["rule"], **outcome,
                     "caught": outcome["exit"] == 1 and bool(named), "by": named})
    return {"correct": {**correct, "passes": correct["exit"] == 0 and correct["waived"] == 0}, "broken": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("designs", nargs="*")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--in-process", action="store_true",
                        help="run the checks through the Python API in this process (broken variants: only the "
                        "checks their rule names); what the fast test does")
    args = parser.parse_args()
    designs = manifest()
    names = args.designs or list(designs)
    jobs = 1 if args.in_process else args.jobs  # checks seed torch's global RNG: one in-process run at a time
    with ThreadPoolExecutor(jobs) as pool:
        results = dict(zip(names, pool.map(lambda n: judge(designs[n], args.in_process), names)))
    passes = caught = total = 0
    print(f"{'design':<11} {'correct':<34} broken caught")
    for name, result in results.items():
        correct = result["correct"]
        verdict = "PASS" if correct["passes"] else f"FAIL exit {correct['exit']} {','.join(correct['failed'])}"
        hits = sum(row["caught"] for row in result["broken"])
        passes += correct["passes"]
        caught += hits
        total += len(result["broken"])
        print(f"{name:<11} {verdict:<34} {hits}/{len(result['broken'])}")
        for row in result["broken"]:
            mark = "caught" if row["caught"] else "MISSED"
            print(f"    {row['variant']:<30} {mark:<7} exit {row['exit']}  by {','.join(row['by']) or '-'}"
                  f"  (failed: {','.join(row['failed']) or 'nothing'})")
    print(f"\ncorrect models passing: {passes}/{len(results)}; broken variants caught: {caught}/{total}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if passes == len(results) and caught == total else 1


if __name__ == "__main__":
    sys.exit(main())
