"""Helpers for the probe tests (a uniquely named module: tests/gradients has its own)."""

from __future__ import annotations

from pathlib import Path

from alignguard.checks.context import CheckContext
from alignguard.checks.probes.modulation import ModulationProbeCheck
from alignguard.checks.probes.noise import NoiseProbeCheck
from alignguard.checks.probes.positivity import PositivityProbeCheck
from alignguard.checks.probes.swap import SwapProbeCheck
from alignguard.checks.probes.translation import TranslationProbeCheck
from alignguard.modelfile.loader import load_model_file
from alignguard.spec.loader import load_spec
from alignguard.spec.model import Spec

HERE = Path(__file__).resolve().parent
PROBE_MODEL = HERE / "models" / "probe_models.py"
PROBE_SPEC = HERE / "specs" / "probe_spec.yaml"
ADDITIVE_SPEC = HERE / "specs" / "additive_spec.yaml"
PROBES = (NoiseProbeCheck, SwapProbeCheck, ModulationProbeCheck, PositivityProbeCheck, TranslationProbeCheck)


def spec_with(path: Path = PROBE_SPEC, **changes) -> Spec:
    data = load_spec(path).model_dump(by_alias=True, exclude_none=True)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return Spec.model_validate(data)


def probe_results(spec: Spec, model_path: Path = PROBE_MODEL):
    model_file = load_model_file(model_path, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    results = [r for cls in PROBES if cls().applies(spec) for r in cls().run(context)]
    assert "capture" not in context._memo, "probes must not need the traced graph"
    return results


def by_check(results, check_id):
    return [r for r in results if r.check_id == check_id]


def built(builder: str, **changes):
    return probe_results(spec_with(**{"entry_points.build_model": builder, **changes}))
