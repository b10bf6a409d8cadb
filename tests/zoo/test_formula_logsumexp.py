"""`logsumexp(a, b)` in a design equation matches torch.logsumexp over a stack of the terms and the
written-out log(exp(a) + exp(b)); a plain sum of log counts does not."""

import pytest

from alignguard.spec.formula import FormulaSyntaxError, parse_equation
from alignguard.spec.model import Spec
from zoo_helpers import REPO, verdicts

MODEL = REPO / "tests" / "zoo" / "models" / "counts_forms.py"
SPEC = Spec.model_validate({"version": 1, "name": "counts", "inputs": {"x": {"role": "invariant"}},
                            "symbols": {"a": "a", "b": "b", "total": "total"},
                            "formulas": [{"equation": "total = logsumexp(a, b)"}]})


@pytest.mark.parametrize("combine, verdict", [("logsumexp", "pass"), ("written_out", "pass"), ("sum", "fail")])
def test_logsumexp_forms(combine, verdict, tmp_path):
    model = tmp_path / "counts.py"
    model.write_text(MODEL.read_text().replace('COMBINE = "logsumexp"', f'COMBINE = "{combine}"'))
    assert verdicts(SPEC, str(model), "formula") == [verdict]


def test_logsumexp_needs_two_terms():
    with pytest.raises(FormulaSyntaxError, match="two or more"):
        parse_equation("total = logsumexp(a)")
