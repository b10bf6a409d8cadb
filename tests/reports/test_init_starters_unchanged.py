"""What `alignguard init` writes stays byte-identical while its cost is worked on (issue 20): the
starter spec of CMDN and of every zoo design is compared with the one committed in starters/.

The committed files are what `api.infer_starter_spec` wrote before init's measurement was touched;
a change that alters a measured share, a step, a `reaches` list or a comment fails here. When a
change of what init writes is intended, regenerate the file and say why in the commit."""

from __future__ import annotations

import difflib

import pytest

from tests.reports.conftest import HERE

REPO = HERE.parents[1]
STARTERS = HERE / "starters"
ZOO = sorted(p.stem for p in STARTERS.glob("*.yaml") if p.stem != "cmdn")


def _model(name: str):
    return REPO / "models" / "cmdn.py" if name == "cmdn" else REPO / "examples" / "zoo" / name / f"{name}.py"


@pytest.mark.parametrize("name", ["cmdn", *(pytest.param(n, marks=pytest.mark.slow) for n in ZOO)])
def test_init_writes_the_committed_starter(name):
    from alignguard.api import infer_starter_spec

    expected = (STARTERS / f"{name}.yaml").read_text(encoding="utf-8")
    _, written = infer_starter_spec(_model(name))
    diff = "".join(difflib.unified_diff(expected.splitlines(True), written.splitlines(True),
                                        f"starters/{name}.yaml", "written now"))
    assert written == expected, diff


def test_every_zoo_design_has_a_committed_starter():
    designs = sorted(p.name for p in (REPO / "examples" / "zoo").iterdir() if (p / f"{p.name}.py").exists())
    assert designs == ZOO
