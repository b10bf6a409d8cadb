"""`alignguard check` and `alignguard init` on real models, each against its own bare training step.

For every model the baseline is the bare process of check_latency.py (import torch, import the
model file, build, draw the spec's example batch, one forward and one backward of the summed loss
terms); the check is the real CLI, `alignguard check SPEC MODEL --output json:FILE` (the JSON
gives the slowest phases), and init is `alignguard init MODEL -o TMP --force`. The three run as
fresh subprocesses, alternated (ABBA) so machine load hits them alike; figures are medians and
the ratios are what counts (absolute seconds move with the load, which is printed).

Models: CMDN (specs/cmdn.yaml), the ResNet-50-layout and 12-layer transformer cases of
large_models.py, a DeepSEA-sized sequence CNN (3 convolutions of 320/480/960 kernels over
1000 bp, 919 sigmoid outputs, example batch 16), and every design of examples/zoo/ when that
folder exists (its zoo.yaml names each design's spec and correct model).

    python benchmarks/real_models.py [--repeats 1] [--only cmdn,deepsea,...] [--list]

Targets (issue 20): check <= 2x baseline wall, <= 1.5x peak RSS; init no slower than check;
CMDN <= 1.3x wall. "init no slower than check" is judged on paired ratios: each round's init wall
over the same round's check wall (the two ran back to back); a miss is flagged only when their
median exceeds 1 by more than the rounds' spread (half the range of the ratios) and by more than
INIT_NOISE (5%: one round of the same work differs by that much on a shared machine; the zoo's init
and check, which do nearly the same work, measured 0.95-1.03x). The figure is printed either way. Exits 0 when every command ran (findings are printed, not fatal), 2 when one
could not run (a check exiting 2 is reported as such and the row is marked).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
WALL_TARGET, RSS_TARGET, CMDN_TARGET = 2.0, 1.5, 1.3
INIT_NOISE = 0.05  # the least tolerance on init / check: what one round of equal work varies by

DEEPSEA = '''
"""DeepSEA-sized multi-task sequence CNN (Zhou & Troyanskaya 2015): 1000 bp one-hot DNA in,
919 independent chromatin-feature logits out."""
import torch
import torch.nn.functional as F
from torch import nn

LENGTH, TASKS = 1000, 919


class DeepSEA(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(4, 320, 8), nn.Conv1d(320, 480, 8), nn.Conv1d(480, 960, 8)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(0.2), nn.Dropout(0.2), nn.Dropout(0.5)
        self.fc = nn.Linear(960 * 53, 925)
        self.head = nn.Linear(925, TASKS)

    def forward(self, x):
        h = self.drop1(F.max_pool1d(F.relu(self.conv1(x)), 4))
        h = self.drop2(F.max_pool1d(F.relu(self.conv2(h)), 4))
        h = self.drop3(F.relu(self.conv3(h)))
        logits = self.head(F.relu(self.fc(h.flatten(1))))
        return {"logits": logits, "probs": torch.sigmoid(logits)}


def build_model():
    return DeepSEA()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = F.one_hot(torch.randint(0, 4, (batch_size, LENGTH), generator=g), 4).float().transpose(1, 2)
    return {"x": x, "y": (torch.rand(batch_size, TASKS, generator=g) < 0.1).float()}


def loss_terms(model, batch, outputs, step):
    l2 = sum(p.pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight"))
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logits"], batch["y"]), "l2": 5e-7 * l2}
'''

DEEPSEA_SPEC = """
version: 1
name: DeepSEA
entry_points: {batch_size: 16, seed: 0}
inputs: {x: {role: invariant}}
symbols: {logits: logits, probs: probs}
components:
  conv1: {module: conv1, reaches: [logits]}
  conv2: {module: conv2, reaches: [logits]}
  conv3: {module: conv3, reaches: [logits]}
  head: {module: head, reaches: [logits]}
formulas: [{equation: probs = sigmoid(logits)}]
losses:
  bce: {min_share: 0.5, reaches: [conv1, conv2, conv3, head]}
  l2: {min_share: -0.5, min_norm_ratio: 1.0e-9}
probes:
  batch_independence: {symbols: [logits, probs]}
"""


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


latency = _script("check_latency")
large = _script("large_models")


@dataclass
class Case:
    name: str
    spec: Path
    model: Path


@dataclass
class Figures:
    runs: dict[str, list] = field(default_factory=lambda: {"baseline": [], "check": [], "init": []})
    verdicts: set = field(default_factory=set)
    phases: dict[str, float] = field(default_factory=dict)

    def median(self, which: str, attribute: str) -> float:
        return median(getattr(r, attribute) for r in self.runs[which])


def zoo_cases(zoo: Path) -> list[Case]:
    """Each zoo design's spec and correct model, from zoo.yaml when present, else FOLDER/FOLDER.py."""
    if not zoo.is_dir():
        return []
    manifest = zoo / "zoo.yaml"
    if manifest.exists():
        from ruamel.yaml import YAML

        designs = YAML(typ="safe").load(manifest.read_text()).get("designs", {})
        return [Case(f"zoo/{name}", zoo / entry["spec"], zoo / entry["model"]) for name, entry in designs.items()]
    return [Case(f"zoo/{d.name}", d / "spec.yaml", d / f"{d.name}.py")
            for d in sorted(zoo.iterdir()) if (d / "spec.yaml").exists() and (d / f"{d.name}.py").exists()]


def all_cases(folder: Path, image: int, tokens: int, batch: int) -> list[Case]:
    cases = [Case("cmdn", ROOT / "specs" / "cmdn.yaml", ROOT / "models" / "cmdn.py")]
    for name, encoder in (("resnet50", large.RESNET50.format(image=image)),
                          ("transformer", large.TRANSFORMER.format(tokens=tokens))):
        spec, model = large.write_case(folder, name, encoder, batch)
        cases.append(Case(name, spec, model))
    (folder / "deepsea.py").write_text(DEEPSEA)
    (folder / "deepsea.yaml").write_text(DEEPSEA_SPEC)
    cases.append(Case("deepsea", folder / "deepsea.yaml", folder / "deepsea.py"))
    return cases + zoo_cases(ROOT / "examples" / "zoo")


def measure(case: Case, repeats: int, folder: Path) -> Figures:
    """ABBA-alternated baseline, check and init processes; the check's phases from its JSON."""
    batch_size, seed = latency.batch_settings(case.spec)
    report, starter = folder / f"{case.name.replace('/', '_')}.json", folder / "starter.yaml"
    argv = {
        "baseline": [sys.executable, "-c", latency.BASELINE, str(case.model), str(batch_size), str(seed)],
        # --timeout 0: the default 600 s limit (a hang guard) cut the large models' checks short under
        # load, which made their rows exit 2 with the wall ratio fixed by the limit.
        "check": latency.cli("check", str(case.spec), str(case.model), "--output", f"json:{report}", "--timeout", "0"),
        "init": latency.cli("init", str(case.model), "--output", str(starter), "--force", "--timeout", "0"),
    }
    allowed = {"baseline": (0,), "check": (0, 1, 2), "init": (0,)}
    figures = Figures()
    for i in range(repeats):
        order = ("baseline", "check", "init") if i % 2 == 0 else ("init", "check", "baseline")
        for which in order:
            result = latency.run_measured(argv[which])
            latency.require(result, allowed[which], f"{which} on {case.name}")
            if which == "check":
                figures.verdicts.add(result.returncode)
            figures.runs[which].append(result)
    if report.exists():
        timings = json.loads(report.read_text()).get("timings", {})
        figures.phases = {k: v for k, v in timings.items() if k != "total"}
    return figures


def row(case: Case, f: Figures) -> tuple[str, list[str]]:
    b_wall, b_cpu, b_rss = (f.median("baseline", a) for a in ("seconds", "cpu_seconds", "max_rss_mib"))
    c_wall, c_cpu, c_rss = (f.median("check", a) for a in ("seconds", "cpu_seconds", "max_rss_mib"))
    i_wall, i_cpu, i_rss = (f.median("init", a) for a in ("seconds", "cpu_seconds", "max_rss_mib"))
    wall_target = CMDN_TARGET if case.name == "cmdn" else WALL_TARGET
    init_text, init_slower = init_against_check(f)
    missed = [text for text, bad in (
        (f"wall {c_wall / b_wall:.2f}x > {wall_target}x", c_wall / b_wall > wall_target),
        (f"RSS {c_rss / b_rss:.2f}x > {RSS_TARGET}x", c_rss / b_rss > RSS_TARGET),
        (f"init {init_text}", init_slower),
        ("check exit 2 (could not judge)", 2 in f.verdicts)) if bad]
    line = (f"{case.name:18} {b_wall:6.1f} {b_cpu:6.1f} {b_rss:6.0f} | {c_wall / b_wall:5.2f} {c_cpu / b_cpu:5.2f} "
            f"{c_rss / b_rss:5.2f} {''.join(map(str, sorted(f.verdicts))):>4} | {i_wall / b_wall:5.2f} "
            f"{i_cpu / b_cpu:5.2f} {i_rss / b_rss:5.2f} | {'met' if not missed else 'MISSED: ' + '; '.join(missed)}")
    return line + ("" if init_slower else f" (init {init_text})"), missed


def init_against_check(f: Figures) -> tuple[str, bool]:
    """init's wall over the check's, paired round by round (the median of the per-round ratios), with
    the rounds' range; slower (a miss) only when the median exceeds 1 by more than both the rounds'
    spread (half their range) and INIT_NOISE. Also the CPU and peak-RSS ratios (medians, not judged)."""
    pairs = list(zip(f.runs["init"], f.runs["check"]))
    wall = [i.seconds / c.seconds for i, c in pairs]
    cpu = median(i.cpu_seconds / c.cpu_seconds for i, c in pairs)
    rss = median(i.max_rss_mib / c.max_rss_mib for i, c in pairs)
    ratio, tolerance = median(wall), max(INIT_NOISE, (max(wall) - min(wall)) / 2)
    rounds = f"rounds {min(wall):.2f}-{max(wall):.2f}, " if len(wall) > 1 else "1 round, "
    text = (f"{ratio:.2f}x the check's wall ({rounds}+{tolerance:.2f} tolerated), "
            f"{cpu:.2f}x its CPU, {rss:.2f}x its RSS")
    return text, ratio > 1 + tolerance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="Alternated (baseline, check, init) rounds per model.")
    parser.add_argument("--only", default="", help="Comma-separated case names (cmdn, resnet50, transformer, "
                                                   "deepsea, zoo/NAME).")
    parser.add_argument("--list", action="store_true", help="Print the case names and exit.")
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="Example batch of the two large_models.py cases.")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="alignguard-real-") as tmp:
        folder = Path(tmp)
        cases = all_cases(folder, args.image, args.tokens, args.batch)
        if args.list:
            print("\n".join(c.name for c in cases))
            return 0
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {c.name for c in cases}
        if unknown:
            raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}; --list shows them")
        cases = [c for c in cases if not wanted or c.name in wanted]
        print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}; load average before "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeats} alternated round(s), medians")
        print(f"{'model':18} {'base: wall':>10} {'CPU':>6} {'MiB':>6} | {'check: wall':>11} {'CPU':>5} "
              f"{'RSS':>5} {'exit':>4} | {'init: wall':>10} {'CPU':>5} {'RSS':>5} | targets (ratios are x baseline)")
        missed_any = 0
        for case in cases:
            figures = measure(case, max(1, args.repeats), folder)
            line, missed = row(case, figures)
            print(line, flush=True)
            slowest = sorted(figures.phases.items(), key=lambda kv: -kv[1])[:4]
            if slowest:
                print(f"{'':18} slowest check phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest), flush=True)
            missed_any += bool(missed)
        print(f"load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
              f"{len(cases) - missed_any}/{len(cases)} models meet every target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
