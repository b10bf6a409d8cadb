"""The pytest plugin, run in real pytest sessions (pytester): `--alignguard` items, the
`alignguard_check` fixture and the `alignguard` marker."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.ecosystem.conftest import MISALIGNED_SPEC, PAIR_CONFIG, plugin_installed

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def run(pytester, plugin_args, *args):
    return pytester.runpytest_inprocess(*plugin_args, "-p", "no:randomly", "-p", "no:cacheprovider", *args)


def test_entry_point_is_declared_and_points_at_the_plugin():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert declared == {"alignguard": "alignguard.pytest_plugin"}
    if not plugin_installed():
        pytest.skip("this environment's install predates the entry point (pip install -e . registers it)")


def test_alignguard_collects_one_item_per_check_id(pytester, plugin_args, project):
    project(root=pytester.path)
    result = run(pytester, plugin_args, "--alignguard", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "specs/tiny.yaml::symbol.bound[[]tiny.py[]] PASSED*",
        "specs/tiny.yaml::component.called[[]tiny.py[]] PASSED*",
        "specs/tiny.yaml::component.on_path[[]tiny.py[]] PASSED*",
        "specs/tiny.yaml::component.effect[[]tiny.py[]] PASSED*",
    ])


def test_a_finding_fails_its_item_with_expected_found_and_fix(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC, root=pytester.path)
    result = run(pytester, plugin_args, "--alignguard")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*models/tiny.py fails component.called of spec 'tiny' at --fail-on error:",
        "*- [[]component side[]] (fail)",
        "*expected: 'unused' called in forward",
        "*fix:      call self.unused in forward*",
        "FAILED specs/tiny.yaml::component.called[[]tiny.py[]]*",
    ])


def test_items_obey_k_and_the_marker(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC, root=pytester.path)
    run(pytester, plugin_args, "--alignguard", "-k", "on_path").assert_outcomes(passed=1)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    run(pytester, plugin_args, "--alignguard", "-m", "not alignguard").assert_outcomes(passed=1)


def test_without_the_option_nothing_is_collected(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC, root=pytester.path)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    run(pytester, plugin_args).assert_outcomes(passed=1)


def test_warning_severity_counts_only_at_fail_on_warning(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC + "severity:\n  component.*: warning\n", root=pytester.path)
    run(pytester, plugin_args, "--alignguard").assert_outcomes(passed=4)
    run(pytester, plugin_args, "--alignguard", "--alignguard-fail-on", "warning").assert_outcomes(
        passed=3, failed=1)
    project(spec=MISALIGNED_SPEC + "severity:\n  component.*: warning\n",
            config=PAIR_CONFIG.replace('fail-on = "error"', 'fail-on = "warning"'), root=pytester.path)
    run(pytester, plugin_args, "--alignguard").assert_outcomes(passed=3, failed=1)


def test_a_spec_that_does_not_load_fails_with_its_paragraph(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC.replace("module: unused", "modul: unused"), root=pytester.path)
    result = run(pytester, plugin_args, "--alignguard")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*spec error:*modul*specs/tiny.yaml:*"])


def test_no_configured_pair_is_a_usage_error(pytester, plugin_args):
    pytester.makefile(".toml", pyproject="[tool.alignguard]\nfail-on = 'error'\n")
    result = run(pytester, plugin_args, "--alignguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--alignguard found no spec/model pairs*"])


def test_fixture_returns_the_report_of_the_configured_pair(pytester, plugin_args, project):
    project(root=pytester.path)
    pytester.makepyfile(test_gate="""
        def test_gate(alignguard_check):
            report = alignguard_check()
            assert report.spec_name == "tiny" and report.aligned()
    """)
    run(pytester, plugin_args).assert_outcomes(passed=1)


def test_fixture_fails_the_test_with_every_finding(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC, root=pytester.path)
    pytester.makepyfile(test_gate="""
        def test_gate(alignguard_check):
            alignguard_check("specs/tiny.yaml", "models/tiny.py")
            raise AssertionError("unreachable")
    """)
    result = run(pytester, plugin_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*does not implement spec 'tiny'*1 finding at --fail-on error",
                                 "*- component.called [[]component side[]] (fail)"])
    result.stdout.no_fnmatch_line("*unreachable*")


def test_marker_runs_the_test_only_on_an_aligned_model(pytester, plugin_args, project):
    project(spec=MISALIGNED_SPEC, root=pytester.path)
    (pytester.path / "specs" / "good.yaml").write_text(MISALIGNED_SPEC.replace("  side:\n    module: unused\n", ""))
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.alignguard("specs/good.yaml", "models/tiny.py")
        def test_aligned():
            pass

        @pytest.mark.alignguard(spec="specs/tiny.yaml", model="models/tiny.py")
        def test_misaligned():
            raise AssertionError("the body ran")

        @pytest.mark.alignguard("specs/tiny.yaml", "models/tiny.py")
        def test_marker_gives_the_fixture_its_pair(alignguard_check):
            alignguard_check()
    """)
    result = run(pytester, plugin_args, "--strict-markers")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*- component.called [[]component side[]] (fail)"])
    result.stdout.no_fnmatch_line("*the body ran*")


def test_one_spec_paired_with_two_models_gets_items_for_each(pytester, plugin_args, project):
    project(root=pytester.path, config=PAIR_CONFIG + '\n[[tool.alignguard.pairs]]\nspec = "specs/tiny.yaml"\n'
            'model = "other/tiny.py"\n')
    (pytester.path / "other").mkdir()
    (pytester.path / "other" / "tiny.py").write_text((pytester.path / "models" / "tiny.py").read_text())
    result = run(pytester, plugin_args, "--alignguard", "-v")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["specs/tiny.yaml::symbol.bound[[]models/tiny.py[]] PASSED*",
                                 "specs/tiny.yaml::symbol.bound[[]other/tiny.py[]] PASSED*"])
