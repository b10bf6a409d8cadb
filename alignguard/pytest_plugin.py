"""pytest plugin (entry point `pytest11`): the alignment gate inside a project's test run.

* `pytest --alignguard` collects every spec/model pair of `[tool.alignguard]` (pyproject.toml):
  one test item per check id, `SPEC::CHECK_ID[MODEL]`, failing with the finding's expected /
  found / where / fix. Each pair is checked once per session; its items share the report.
* `alignguard_check` fixture: `alignguard_check(spec, model)` returns the Report of an aligned
  pair and fails the test with every finding otherwise (spec and model default to the test's
  `alignguard` marker, else to the one configured pair).
* `@pytest.mark.alignguard(spec, model)`: the test runs only on an aligned model; the pair is
  checked before the test body and its findings fail the test.

Without `--alignguard`, a marker or the fixture the plugin does nothing and imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

REPORTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alignguard", "alignment of models with their design specs")
    group.addoption("--alignguard", action="store_true", default=False,
                    help="check every spec/model pair of [tool.alignguard], one test item per check id.")
    group.addoption("--alignguard-fail-on", choices=("error", "warning"), default=None,
                    help="lowest severity that fails an item (default: the config's fail-on, else error).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alignguard(spec, model, fail_on='error'): run the test only on a model that implements "
        "the spec; the check's findings fail the test.")
    config.stash[REPORTS] = {}


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to these items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not config.getoption("alignguard"):
        return
    from alignguard.config import load_config
    from alignguard.errors import AlignguardError

    try:
        project = load_config(config.rootpath)
    except AlignguardError as error:
        raise pytest.UsageError(str(error)) from None
    if not project.pairs:
        raise pytest.UsageError(
            "--alignguard found no spec/model pairs: add them to pyproject.toml, e.g.\n"
            "  [[tool.alignguard.pairs]]\n  spec = \"specs/model.yaml\"\n  model = \"models/model.py\"")
    by_spec: dict[Path, list] = {}
    for pair in project.resolved_pairs():
        by_spec.setdefault(pair.spec, []).append(pair)
    for spec_path, pairs in by_spec.items():
        collector = SpecFile.from_parent(session, path=spec_path, pairs=pairs, fail_on=_fail_on(config, project))
        items.extend(collector.collect())


def _fail_on(config: pytest.Config, project=None) -> str:
    return config.getoption("alignguard_fail_on") or (project.fail_on if project else None) or "error"


def checked(config: pytest.Config, spec: Path, model: Path):
    """The pair's Report, computed once per session. An input error is kept and re-raised per item."""
    from alignguard.api import check
    from alignguard.errors import AlignguardError

    key = (Path(spec).resolve(), Path(model).resolve())
    reports = config.stash[REPORTS]
    if key not in reports:
        try:
            reports[key] = check(*key)
        except AlignguardError as error:
            reports[key] = error
    outcome = reports[key]
    if isinstance(outcome, Exception):
        raise AlignguardInputError(str(outcome))
    return outcome


class AlignguardInputError(Exception):
    """The spec or model could not be judged (exit 2 on the command line)."""


class AlignguardFindings(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class SpecFile(pytest.File):
    """A spec file of [tool.alignguard]: one item per check id that applies, per model paired with it."""

    def __init__(self, *, pairs: list, fail_on: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pairs = pairs
        self.fail_on = fail_on

    def collect(self) -> Iterator["CheckItem"]:
        from alignguard.api import applicable_check_ids
        from alignguard.errors import AlignguardError
        from alignguard.spec.loader import load_spec

        try:
            check_ids = applicable_check_ids(load_spec(self.path))
        except AlignguardError:
            check_ids = ["spec"]  # the item raises the spec's error paragraph when it runs
        names = [pair.model.name for pair in self.pairs]
        for pair in self.pairs:
            label = pair.model.name if names.count(pair.model.name) == 1 else _relative(pair.model, self.config)
            for check_id in check_ids:
                yield CheckItem.from_parent(self, name=f"{check_id}[{label}]", check_id=check_id, model=pair.model)


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return path.as_posix()


class CheckItem(pytest.Item):
    """One check id of one spec/model pair."""

    def __init__(self, *, check_id: str, model: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_id = check_id
        self.model = model
        self.add_marker("alignguard")  # `-m alignguard` selects these items

    def runtest(self) -> None:
        report = checked(self.config, self.path, self.model)
        if report.error is not None:
            raise AlignguardInputError(report.error.paragraph())
        results = [r for r in report.results if r.check_id == self.check_id]
        if not results:
            pytest.skip(f"spec '{report.spec_name}' gives {self.check_id} nothing to judge in this model")
        fail_on = self.parent.fail_on
        from alignguard.results import Status

        problems = [r for r in results if report.counts_against(r, fail_on) or r.status is Status.ERROR]
        if problems:
            raise AlignguardFindings(_describe(problems, self.check_id, report, fail_on))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (AlignguardFindings, AlignguardInputError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"alignguard {self.check_id} [{self.model.name}]"


def _describe(problems: list, check_id: str, report, fail_on: str) -> str:
    lines = [f"{report.model_path} fails {check_id} of spec '{report.spec_name}' at --fail-on {fail_on}:"]
    for result in problems:
        lines.extend(result.outline(f"[{result.element}]"))
    lines.append(f"`alignguard explain {check_id}` says what the check proves")
    return "\n".join(lines)


def _marked_pair(node: pytest.Item) -> tuple[Path | None, Path | None, str | None]:
    """The marker's spec and model (relative to the rootdir) and fail_on; Nones without a marker."""
    marker = node.get_closest_marker("alignguard")
    if marker is None:
        return None, None, None
    args = list(marker.args)
    spec = marker.kwargs.get("spec", args[0] if args else None)
    model = marker.kwargs.get("model", args[1] if len(args) > 1 else None)
    root = node.config.rootpath
    return (root / spec if spec else None), (root / model if model else None), marker.kwargs.get("fail_on")


@pytest.fixture
def alignguard_check(request: pytest.FixtureRequest):
    """`alignguard_check(spec=None, model=None, fail_on=None) -> Report`: fails the test on findings."""
    config = request.config

    def run(spec: str | Path | None = None, model: str | Path | None = None, fail_on: str | None = None):
        __tracebackhide__ = True
        from alignguard.config import load_config
        from alignguard.testing import failure_message

        marked_spec, marked_model, marked_fail_on = _marked_pair(request.node)
        spec, model = spec or marked_spec, model or marked_model
        project = None
        if spec is None or model is None:
            project = load_config(config.rootpath)
            pairs = project.resolved_pairs()
            if len(pairs) != 1:
                raise pytest.UsageError(
                    f"alignguard_check() needs a spec and a model: pass them, mark the test "
                    f"@pytest.mark.alignguard(spec, model), or configure exactly one pair in [tool.alignguard] "
                    f"(found {len(pairs)})")
            spec, model = spec or pairs[0].spec, model or pairs[0].model
        threshold = fail_on or marked_fail_on or _fail_on(config, project)
        try:
            report = checked(config, Path(spec), Path(model))
        except AlignguardInputError as error:
            pytest.fail(str(error), pytrace=False)
        if not report.aligned(threshold):
            pytest.fail(failure_message(report, threshold), pytrace=False)
        return report

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """A test marked @pytest.mark.alignguard(spec, model) runs only on an aligned model."""
    marker = item.get_closest_marker("alignguard")
    if marker is None or not isinstance(item, pytest.Function):
        return
    spec, model, fail_on = _marked_pair(item)
    if spec is None or model is None:
        pytest.fail(f"@pytest.mark.alignguard needs a spec and a model: "
                    f"@pytest.mark.alignguard('specs/x.yaml', 'models/x.py')", pytrace=False)
    from alignguard.testing import failure_message

    try:
        report = checked(item.config, spec, model)
    except AlignguardInputError as error:
        pytest.fail(str(error), pytrace=False)
    threshold = fail_on or _fail_on(item.config)
    if not report.aligned(threshold):
        pytest.fail(failure_message(report, threshold), pytrace=False)
