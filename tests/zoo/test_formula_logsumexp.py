"""`logsumexp(a, b)` in a design equation matches torch.logsumexp over a stack of the terms and the
written-out log(exp(a) + exp(b)); a plain sum of log counts does not."""

import pytest

from alignguard.spec.formula import FormulaSyntaxError, parse_equation
from alignguard.spec.model import Spec
from zoo_helpers import REPO, results, verdicts, zoo_spec

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


def test_identifiability_on_film_whose_symbols_do_not_broadcast_as_written_is_a_note_not_an_error():
    # FiLM's gamma and beta are per channel (B, C) against features (B, C, L): the formula's symmetry
    # cannot be applied in those shapes, so it stays unconfirmed instead of crashing the check.
    found = results(zoo_spec("film", "formulas"), "film/film.py", "identifiability")
    assert found and all(r.status.value == "pass" for r in found)
    assert all("do not broadcast" in r.details["evidence"] for r in found)
