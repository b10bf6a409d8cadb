"""Helpers for the zoo tests: a zoo spec reduced to the sections a test is about, and a run of it."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from alignguard.spec.model import Spec

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "examples" / "zoo"
_KEEP_ALWAYS = ("version", "name", "entry_points", "inputs", "symbols", "components")


def zoo_spec(design: str, *sections: str, **changes) -> Spec:
    """The zoo design's spec with only `sections` kept (plus inputs, symbols, components), and
    dotted-key changes applied, e.g. zoo_spec("dann", "losses", **{"gradients.descent": False})."""
    data = YAML(typ="safe").load((ZOO / design / "spec.yaml").read_text())
    data = {k: v for k, v in data.items() if k in _KEEP_ALWAYS + sections}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return Spec.model_validate(data)


def results(spec: Spec, model: str, check_id: str | None = None) -> list:
    """Every result of checking `model` (a path relative to examples/zoo/, or absolute) against `spec`."""
    from alignguard.api import check

    path = Path(model) if Path(model).is_absolute() else ZOO / model
    report = check(spec, path)
    return [r for r in report.results if check_id is None or r.check_id == check_id]


def failures(spec: Spec, model: str, check_id: str | None = None) -> list:
    return [r for r in results(spec, model, check_id) if r.status.value in ("fail", "error")]


def verdicts(spec: Spec, model: str, check_id: str) -> list[str]:
    found = results(spec, model, check_id)
    assert found, f"{check_id} produced no result for {model}: it must never pass by matching nothing"
    return [r.status.value for r in found]


def edited_model(folder: Path, model: str, line: str, replacement: str, *, appended: str = "") -> str:
    """A copy of the zoo model `model` (e.g. "vqvae/vqvae.py") in `folder` with `line` (which must be in
    it) replaced and `appended` added at the end: a broken variant made for one test."""
    source = (ZOO / model).read_text()
    assert line in source, f"{model} no longer contains {line!r}"
    path = folder / Path(model).name
    path.write_text(source.replace(line, replacement) + appended)
    return str(path)

