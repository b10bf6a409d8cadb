"""`alignguard init`: the starter spec validates, records what was measured, and passes
`check` on a model that is sound (on the reference CMDN once the formula is added)."""

from __future__ import annotations

import shutil

import pytest
from ruamel.yaml import YAML

from alignguard.spec.loader import load_spec
from tests.reports.conftest import HERE

REPO = HERE.parents[1]


@pytest.fixture
def leaky(workspace):
    shutil.copy(HERE / "models" / "leaky.py", workspace / "leaky.py")
    return workspace / "leaky.py"


def test_init_writes_a_spec_that_validates(cli, workspace):
    result = cli("init", "model.py", "--output", "specs/model.yaml")
    assert result.exit_code == 0, result.output
    spec = load_spec(workspace / "specs/model.yaml")
    assert {n: i.role for n, i in spec.inputs.items()} == {"x": "invariant", "c": "context"}
    assert {n: b.output for n, b in spec.symbols.items()} == {"h": "h", "logit": "logit"}
    assert {n: (c.module, c.reaches) for n, c in spec.components.items()} == {
        "encoder": ("encoder", ["h", "logit"]), "head": ("head", ["logit"])}
    assert spec.losses["bce"].step == 0 and spec.losses["bce"].reaches == ["encoder", "head"]
    text = (workspace / "specs/model.yaml").read_text()
    assert "Not listed: unused (built but never called in forward)" in text
    assert "# measured share 1 at step 0" in text
    assert "no loss reaches unused.weight, unused.bias" in text


def test_init_measures_warmup_losses_where_they_are_alive(cli, leaky, workspace):
    assert cli("init", leaky, "-o", "leaky.yaml").exit_code == 0
    data = YAML(typ="safe").load((workspace / "leaky.yaml").read_text())
    # l2's weight is 0 before step 100, so both terms are measured at step 100
    assert {n: loss["step"] for n, loss in data["losses"].items()} == {"bce": 100, "l2": 100}
    assert data["components"]["context"]["reaches"] == ["z", "U", "logit"]
    assert data["components"]["heads"]["reaches"] == ["M", "B", "logit"]
    text = (workspace / "leaky.yaml").read_text()
    assert "#     - {from: c, to: z}" not in text  # c does reach z: not suggested as forbidden
    assert "# TODO" not in text.split("# The design")[0]


def test_init_output_passes_check_on_a_sound_model(cli, leaky):
    assert cli("init", leaky, "-o", "leaky.yaml").exit_code == 0
    result = cli("check", "leaky.yaml", leaky)
    assert result.exit_code == 0, result.output


def test_init_timings_name_each_phase_of_the_survey(cli, workspace):
    plain = cli("init", "model.py", "-o", "plain.yaml")
    timed = cli("init", "model.py", "-o", "timed.yaml", "--timings")
    assert plain.exit_code == timed.exit_code == 0, timed.output
    assert "timings:" not in plain.output
    line = next(l for l in timed.output.splitlines() if l.startswith("timings: "))
    phases = [part.rsplit(" ", 2)[0] for part in line.removeprefix("timings: ").split(", ")]
    assert {"build model", "capture", "gradients", "example batches", "render spec"} <= set(phases), line
    assert (workspace / "plain.yaml").read_text() == (workspace / "timed.yaml").read_text()


def test_init_refuses_to_overwrite(cli, workspace):
    (workspace / "spec.yaml").write_text("keep me\n")
    result = cli("init", "model.py")
    assert result.exit_code == 2 and "--force" in result.output
    assert (workspace / "spec.yaml").read_text() == "keep me\n"


def test_init_reports_a_broken_model_file(cli, workspace):
    (workspace / "broken.py").write_text("def build_model():\n    return 3\n")
    result = cli("init", "broken.py")
    assert result.exit_code == 2 and "Traceback" not in result.output and "Fix:" in result.output


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "models" / "cmdn.py").exists(), reason="reference CMDN not in this checkout")
def test_init_on_the_reference_cmdn_passes_check_once_the_formula_is_added(cli, workspace):
    model = REPO / "models" / "cmdn.py"
    assert cli("init", model, "-o", "cmdn.yaml").exit_code == 0
    spec = workspace / "cmdn.yaml"
    spec.write_text(spec.read_text() + "formulas:\n  - equation: logit = (M * U_I + B) / T\n")
    result = cli("check", spec, model, "-f", "json")
    assert result.exit_code == 0, result.output
    assert '"check_id": "loss.share"' in result.stdout


@pytest.mark.parametrize("name, role", [("x", "invariant"), ("dna_seq", "invariant"), ("c", "context"),
                                        ("cell_type", "context"), ("mask", "other")])
def test_roles_are_guessed_from_argument_names(name, role):
    from alignguard.spec.starter import guess_role

    assert guess_role(name) == role
