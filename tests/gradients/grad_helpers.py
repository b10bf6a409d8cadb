"""Helpers for the gradient-check tests (a uniquely named module, not a conftest: tests/probes has its own)."""

from __future__ import annotations

from pathlib import Path

from alignguard.checks.catalogue import CHECKS as CATALOGUE
from alignguard.checks.context import CheckContext
from alignguard.modelfile.loader import load_model_file
from alignguard.spec.loader import load_spec
from alignguard.spec.model import Spec

HERE = Path(__file__).resolve().parent
GRAD_MODEL = HERE / "models" / "grad_models.py"
GRAD_SPEC = HERE / "specs" / "grad_spec.yaml"
REPO = HERE.parents[1]


def spec_with(path: Path = GRAD_SPEC, **changes) -> Spec:
    """The spec at `path` with dotted-key changes, e.g. spec_with(**{"losses.kl.step": 0})."""
    data = load_spec(path).model_dump(by_alias=True, exclude_none=True)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return Spec.model_validate(data)


def check_results(spec: Spec, model_path: Path = GRAD_MODEL, families=("loss", "gradient", "params")):
    """Run the registered checks of those families on a fresh context (no graph capture needed)."""
    model_file = load_model_file(model_path, spec.entry_points)
    context = CheckContext(spec=spec, model_file=model_file, model=model_file.build())
    results = []
    for cls in CATALOGUE:
        if cls.ids[0].split(".")[0] in families and cls().applies(spec):
            results.extend(cls().run(context))
    assert "capture" not in context._memo, "gradient checks must not need the traced graph"
    return results


def only(results, check_id: str, element: str | None = None):
    return [r for r in results if r.check_id == check_id and (element is None or r.element == element)]


def grad_results(**changes):
    return check_results(spec_with(**changes))
