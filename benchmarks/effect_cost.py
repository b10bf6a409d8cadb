"""component.effect in process on the large models: seconds and forwards, side by side with another checkout.

    python benchmarks/effect_cost.py --compare /work/main [--rounds 2] [--only resnet50,deepsea]

Each arm runs ComponentEffectCheck alone on a fresh CheckContext (its own runner: no capture left by
an earlier check), alternated round by round in one process so machine load hits both alike; seconds
are the best round. Counts are exact under any load: runs of the whole model, and calls of each
top-level module that really computed (a replayed call returns its recording without running
forward). The other checkout's `alignguard/checks/probes/effect.py` is loaded as a module beside this
one (it imports the rest of alignguard from this checkout). Verdicts of the two arms must agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def load_effect(checkout: Path):
    loaded = importlib.util.spec_from_file_location(f"effect_{abs(hash(checkout))}",
                                                    checkout / "alignguard" / "checks" / "probes" / "effect.py")
    module = importlib.util.module_from_spec(loaded)
    sys.modules[loaded.name] = module
    loaded.loader.exec_module(module)
    return module


def measure(check_class, spec, model_file) -> tuple[float, Counter, list]:
    import torch

    from alignguard.checks.context import CheckContext

    torch.manual_seed(spec.entry_points.seed)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    counts: Counter = Counter()
    context.model.register_forward_pre_hook(lambda module, args: counts.update(["<model>"]))
    for name, child in context.model.named_children():
        compute = child.forward

        def counted(*args, _name=name, _compute=compute, **kwargs):
            counts[_name] += 1
            return _compute(*args, **kwargs)
        child.forward = counted
    start = time.perf_counter()
    results = list(check_class().run(context))
    seconds = time.perf_counter() - start
    return seconds, counts, sorted((r.element, r.expected, r.status.value) for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, required=True, help="another checkout of alignguard")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="cmdn,resnet50,transformer,deepsea")
    args = parser.parse_args()

    import real_models

    from alignguard.checks.probes import effect as this
    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.loader import load_spec

    other = load_effect(args.compare.resolve())
    arms = {"other": other.ComponentEffectCheck, "this": this.ComponentEffectCheck}
    wanted = args.only.split(",")
    with tempfile.TemporaryDirectory() as folder:
        cases = [c for c in real_models.all_cases(Path(folder), 64, 64, 4) if c.name in wanted]
        print(f"{'model':12s} {'other s':>8s} {'this s':>8s} {'ratio':>6s}  forwards other -> this")
        for case in cases:
            spec = load_spec(case.spec)
            model_file = load_model_file(case.model, spec.entry_points)
            best, counts, verdicts = {}, {}, {}
            for _ in range(args.rounds):
                for arm, check_class in arms.items():
                    seconds, counts[arm], verdicts[arm] = measure(check_class, spec, model_file)
                    best[arm] = min(best.get(arm, seconds), seconds)
            same = verdicts["other"] == verdicts["this"]
            moves = ", ".join(f"{k} {counts['other'][k]}->{counts['this'][k]}"
                              for k in counts["other"] | counts["this"])
            print(f"{case.name:12s} {best['other']:8.3f} {best['this']:8.3f} {best['this'] / best['other']:6.2f}  "
                  f"{moves}{'' if same else '  VERDICTS DIFFER'}")
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
