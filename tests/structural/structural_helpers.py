"""Run the structural checks on a model instance without a model file (helpers for the tests here)."""

from __future__ import annotations

from pathlib import Path

from alignguard.checks.catalogue import CHECKS as CATALOGUE
from alignguard.checks.context import CheckContext
from alignguard.modelfile.loader import ModelFile
from alignguard.results import CheckResult
from alignguard.spec.loader import load_spec, parse_spec

HERE = Path(__file__).parent
SPEC_PATH = HERE / "cmdn_structure.yaml"


def run_checks(model, *check_ids: str, spec=None, batch_fn=None) -> list[CheckResult]:
    from structural_zoo import example_batch

    spec = spec or load_spec(SPEC_PATH)
    if isinstance(spec, str):
        spec = parse_spec(spec)
    model_file = ModelFile(path=HERE / "structural_zoo.py", module=None, build_model=lambda: model,
                           example_batch=batch_fn or example_batch, loss_terms=lambda *a: {})
    context = CheckContext(spec=spec, model_file=model_file, model=model)
    results = []
    for cls in CATALOGUE:
        if set(cls.ids) & set(check_ids):
            results.extend(r for r in cls().run(context) if r.check_id in check_ids)
    run_checks.context = context
    return results


def one(results: list[CheckResult], check_id: str, element: str | None = None) -> CheckResult:
    chosen = [r for r in results if r.check_id == check_id and (element is None or r.element == element)]
    assert len(chosen) == 1, [(r.check_id, r.element) for r in results]
    return chosen[0]


