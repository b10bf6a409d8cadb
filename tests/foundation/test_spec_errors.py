"""Every malformed spec is one paragraph naming file:line:column, and exit code 2."""

from __future__ import annotations

import pytest

from alignguard.errors import SpecError
from alignguard.spec.loader import parse_spec

VALID_HEAD = """\
version: 1
name: t
inputs:
  x: {role: invariant}
  c: {role: context}
"""


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="spec.yaml")
    return info.value


def test_malformed_yaml_names_line_and_column():
    error = error_of("version: 1\nname: [unclosed\n")
    assert "not valid YAML" in str(error)
    assert error.where.startswith("spec.yaml:3:")


@pytest.mark.parametrize("text, found", [("", "an empty file"), ("- a\n- b\n", "a CommentedSeq"), ("42\n", "a int")])
def test_spec_that_is_not_a_mapping(text, found):
    error = error_of(text)
    assert "must be a YAML mapping" in str(error) and found in str(error)


def test_unknown_key_suggests_the_nearest_field():
    error = error_of(VALID_HEAD + "symbols:\n  z: z\ncomponents:\n  enc:\n    modul: encoder\n")
    assert "unknown key 'modul'" in error.what
    assert "did you mean 'module'" in error.fix
    assert error.where == "spec.yaml:10:5"


def test_unknown_top_level_key():
    error = error_of(VALID_HEAD + "lossses: {}\n")
    assert "did you mean 'losses'" in error.fix
    assert error.where == "spec.yaml:6:1"


def test_wrong_type_says_what_was_given():
    error = error_of(VALID_HEAD.replace("version: 1", "version: 2"))
    assert "version" in error.what and "2" in error.what
    error = error_of(VALID_HEAD + "gradients:\n  batches: many\n")
    assert "gradients.batches" in error.what and "'many'" in error.what
    assert error.where == "spec.yaml:7:3"


def test_missing_required_key():
    error = error_of("version: 1\ninputs: {x: {role: invariant}}\n")
    assert "required key 'name' is missing" in error.what


@pytest.mark.parametrize(
    "equation, message",
    [
        ("logit = (M * U_I + B / T", "not a valid equation"),
        ("logit == M", "exactly one equation"),
        ("logit = __import__('os')", "unknown function"),
        ("logit = M[0]", "is not allowed"),
        ("M + 1 = logit", "cannot assign to expression"),
    ],
)
def test_formula_that_does_not_parse(equation, message):
    text = VALID_HEAD + f"symbols:\n  logit: logit\n  M: M\nformulas:\n  - equation: \"{equation}\"\n"
    error = error_of(text)
    assert message in str(error)
    assert error.where.startswith("spec.yaml:10:")


def test_formula_with_unknown_symbol():
    text = VALID_HEAD + "symbols:\n  logit: logit\nformulas:\n  - equation: logit = M * U_I\n"
    error = error_of(text)
    assert "formula symbol 'M' is not defined" in error.what
    assert error.where == "spec.yaml:9:5"


def test_dangling_references_are_rejected():
    text = VALID_HEAD + "symbols:\n  z: z\nflow:\n  forbidden:\n    - {from: c, to: z_I}\n"
    assert "flow endpoint 'z_I' is not defined" in error_of(text).what
    text = VALID_HEAD + "losses:\n  kl: {reaches: [bottleneck]}\n"
    assert "gradient target 'bottleneck' is not defined" in error_of(text).what


def test_symbol_binding_needs_exactly_one_place():
    error = error_of(VALID_HEAD + "symbols:\n  z: {output: z, module: enc}\n")
    assert "exactly one place" in error.what


def test_loss_share_bounds_must_be_ordered():
    error = error_of(VALID_HEAD + "losses:\n  bce: {min_share: 0.5, max_share: 0.1}\n")
    assert "below min_share" in error.what
