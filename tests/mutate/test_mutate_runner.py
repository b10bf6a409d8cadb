"""The runner and the command: classification, kill rate, exit codes, JSON, suggestions.

Verdicts are asserted by status and check *ids*, never by the checks' wording.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignguard.cli.app import app
from alignguard.errors import ModelFileError, UsageError
from alignguard.mutate import runner
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.report import MutantResult, MutationReport
from mutate_helpers import MODELS, SPECS, load


def _by_id(report: MutationReport) -> dict[str, MutantResult]:
    return {r.id: r for r in report.results}


def test_a_weak_spec_lets_mutants_survive_and_says_which_rule_catches_them():
    spec, model_file = load("tiny_weak.yaml", "tiny_cmdn.py")
    report = runner.run_mutation(spec, model_file, operators=["noise.removed", "loss.dropped", "positivity.*"])
    assert {r.status for r in report.results} == {"survived"}
    results = _by_id(report)
    noise = next(r for r in results.values() if r.operator == "noise.removed")
    assert "stochastic" in noise.suggestion and "probes.noise" in noise.suggestion
    assert "losses.kl" in results["loss.dropped:loss kl"].suggestion
    assert report.kill_rate() == 0.0 and report.exit_code() == 1
    # The weak spec states no sign for M or T: removing their softplus breaks nothing it states, so those
    # mutants are not generated, and listed with what to state if the design needs the sign.
    assert not any(r.operator == "positivity.removed" for r in report.results)
    listed = {n.id: n.reason for n in report.not_applicable}
    assert set(listed) == {"positivity.removed:M", "positivity.removed:T"}
    assert "states no sign for T" in listed["positivity.removed:T"]
    assert "probes.positivity" in listed["positivity.removed:T"]


def test_not_applicable_mutants_are_listed_in_every_report_format():
    from io import StringIO

    from rich.console import Console

    from alignguard.mutate.render import markdown_table, render_console
    from alignguard.mutate.report import NotApplicable

    report = MutationReport("s", "s.yaml", "m.py", 1.0, results=[MutantResult("a:1", "a", "1", "", "killed")],
                            not_applicable=[NotApplicable("positivity.removed", "f", "the spec states no sign for f")])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["not_applicable"] == [{"id": "positivity.removed:f", "operator": "positivity.removed", "target": "f",
                                       "reason": "the spec states no sign for f"}]
    assert data["kill_rate"] == 1.0 and data["counts"]["killed"] == 1  # not in the kill rate
    assert "`positivity.removed:f`: the spec states no sign for f" in markdown_table(report)
    buffer = StringIO()
    render_console(report, Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    assert "not applicable" in text and "positivity.removed:f: the spec states no sign for f" in text
    assert "(1 not applicable)" in text


def test_positivity_mutants_follow_the_sign_the_spec_relies_on(tmp_path):
    """A formula dividing by T relies on T > 0 (a mutant); nothing states M's sign (not applicable)."""
    source = (SPECS / "tiny_weak.yaml").read_text()
    spec_path = tmp_path / "formula_only.yaml"
    spec_path.write_text(source + "formulas:\n  - equation: logit = (M * U_I + B) / T\n")
    spec, model_file = load(str(spec_path), str(MODELS / "tiny_cmdn.py"))
    from alignguard.mutate.analysis import analyse

    mutants, _, not_applicable = runner.plan(analyse(spec, model_file), runner.select_operators(["positivity.*"]))
    assert [m.id for m in mutants] == ["positivity.removed:T"]
    assert "divides by T" in mutants[0].suggestion
    assert [n.id for n in not_applicable] == ["positivity.removed:M"]


def test_the_full_spec_kills_them():
    spec, model_file = load("tiny_strong.yaml", "tiny_cmdn.py")
    report = runner.run_mutation(spec, model_file, operators=["noise.removed", "loss.dropped", "loss.detached",
                                                              "flow.*", "head.additive"])
    assert len(report.results) == 8
    assert {r.status for r in report.results} == {"killed"}, [(r.id, r.status) for r in report.results]
    results = _by_id(report)
    assert "loss.present" in results["loss.dropped:loss bce"].killed_by
    assert "flow.forbidden" in results["flow.context_into_invariant:bottleneck"].killed_by
    assert report.kill_rate() == 1.0 and report.exit_code() == 0


def test_a_mutant_that_does_not_run_is_crashed_not_killed(tiny):
    spec, model_file, analysis, _, _ = tiny

    def break_forward(model):
        model.energy.forward = lambda z: z[:, :1] @ z  # shape error at run time

    mutant = Mutant("test.broken", "energy", "energy broken", "none", edit_model=break_forward)
    result = runner.run_mutant(spec, model_file, mutant, analysis.loss_step, "<spec>", "error")
    assert result.status == "crashed" and "RuntimeError" in result.detail and not result.killed_by


def test_a_mutant_the_checker_cannot_judge_is_an_error_not_a_kill(tiny, monkeypatch):
    spec, model_file, analysis, mutants, _ = tiny

    def cannot_judge(*args, **kwargs):
        raise ModelFileError("capture failed", where="x.py:1", fix="none")

    monkeypatch.setattr(runner, "check_model_file", cannot_judge)
    result = runner.run_mutant(spec, model_file, mutants["loss.dropped:loss kl"], analysis.loss_step, "<spec>", "error")
    assert result.status == "error" and "capture failed" in result.detail


def test_kill_rate_leaves_crashed_out_and_counts_errors_as_not_killed():
    report = MutationReport("s", "s.yaml", "m.py", min_kill=1.0, results=[
        MutantResult("a:1", "a", "1", "", "killed"), MutantResult("a:2", "a", "2", "", "crashed"),
        MutantResult("a:3", "a", "3", "", "error"), MutantResult("a:4", "a", "4", "", "killed")])
    assert report.judged() == 3 and report.kill_rate() == pytest.approx(2 / 3)
    assert report.exit_code() == 1
    report.min_kill = 0.5
    assert report.exit_code() == 0
    assert MutationReport("s", "s.yaml", "m.py", 1.0).exit_code() == 2  # nothing ran: nothing proven


def test_a_failing_unmutated_model_stops_the_run(tmp_path):
    spec_path = tmp_path / "ghost.yaml"
    spec_path.write_text((SPECS / "tiny_weak.yaml").read_text() + "  ghost: {module: ghost}\n")
    spec, model_file = load(str(spec_path), "tiny_cmdn.py")
    with pytest.raises(UsageError, match="unmutated model does not pass"):
        runner.run_mutation(spec, model_file, operators=["loss.dropped"])


def test_an_operator_that_fails_is_reported_not_raised(tiny):
    _, _, analysis, _, _ = tiny

    def broken(analysis):
        raise KeyError("boom")

    operator = runner.Operator("test.broken", "breaks", "nothing", broken)
    mutants, skipped, _ = runner.plan(analysis, [operator])
    assert mutants == [] and skipped[0].operator == "test.broken" and "KeyError" in skipped[0].reason


def test_unknown_operator_is_a_usage_error():
    with pytest.raises(UsageError, match="matches no operator"):
        runner.select_operators(["noise.typo"])


def _cli(*args):
    return CliRunner().invoke(app, ["mutate", *map(str, args)])


def test_cli_json_and_markdown(tmp_path):
    markdown = tmp_path / "table.md"
    result = _cli(SPECS / "tiny_strong.yaml", MODELS / "tiny_cmdn.py", "--operator", "loss.dropped", "--format",
                  "json", "-o", markdown, "--output", f"json:{tmp_path / 'copy.out'}")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["kill_rate"] == 1.0 and data["counts"]["killed"] == 2
    assert {m["id"] for m in data["mutants"]} == {"loss.dropped:loss bce", "loss.dropped:loss kl"}
    assert all(m["killed_by"] for m in data["mutants"])
    assert "| 1 | loss 'bce' dropped from the loss dict | `loss.dropped` | killed |" in markdown.read_text()
    assert json.loads((tmp_path / "copy.out").read_text()) == data


def test_cli_exit_codes(tmp_path):
    weak = _cli(SPECS / "tiny_weak.yaml", MODELS / "tiny_cmdn.py", "--operator", "loss.dropped")
    assert weak.exit_code == 1 and "survived" in weak.stdout and "losses.bce" in weak.stdout
    assert _cli(SPECS / "tiny_weak.yaml", MODELS / "tiny_cmdn.py", "--operator", "loss.dropped",
                "--min-kill", "0").exit_code == 0
    for bad in (["--min-kill", "1.5"], ["--operator", "nope"], ["--fail-on", "info"], ["-f", "sarif"],
                ["-o", "mutants.xyz"]):
        result = _cli(SPECS / "tiny_weak.yaml", MODELS / "tiny_cmdn.py", *bad)
        assert result.exit_code == 2 and "Fix:" in result.output, bad
    missing = _cli(SPECS / "tiny_weak.yaml", tmp_path / "absent.py")
    assert missing.exit_code == 2


def test_cached_batches_keep_a_step_dependent_example_batch(tmp_path):
    """DANN's alpha(p) comes from example_batch(batch_size, seed, step): the mutants' batch cache must pass
    the step on (it dropped it, and `mutate` on the zoo's DANN stopped with a TypeError)."""
    import torch

    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.model import EntryPoints

    path = tmp_path / "stepped.py"
    path.write_text(
        "import torch\n"
        "def build_model():\n    return torch.nn.Linear(2, 1)\n"
        "def example_batch(batch_size, seed, step=0):\n"
        "    return {'input': torch.ones(batch_size, 2), 'alpha': torch.tensor(float(step))}\n"
        "def loss_terms(model, batch, outputs, step):\n    return {'fit': outputs.pow(2).mean()}\n")
    cached = runner.with_cached_batches(load_model_file(path, EntryPoints(batch_size=4, seed=0)))
    assert cached.step_dependent
    model = cached.build_model()
    assert float(cached.batch(model, 4, 0, step=7)["alpha"]) == 7.0
    assert float(cached.batch(model, 4, 0, step=3)["alpha"]) == 3.0
    assert float(cached.batch(model, 4, 0)["alpha"]) == 0.0
    assert torch.equal(cached.batch(model, 4, 0, step=7)["input"], torch.ones(4, 2))
