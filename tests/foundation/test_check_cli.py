"""`alignguard check` end to end, exit codes, and the no-torch fast paths."""

from __future__ import annotations

import json
import subprocess
import sys


def test_aligned_model_exits_0(cli, tiny_spec, tiny_model):
    result = cli("check", tiny_spec, tiny_model)
    assert result.exit_code == 0, result.output
    assert "component.called" in result.output and "aligned" in result.output


def test_uncalled_component_exits_1(cli, tiny_spec, tiny_model, write):
    spec = write("spec.yaml", tiny_spec.read_text().replace("module: head", "module: unused"))
    result = cli("check", spec, tiny_model)
    assert result.exit_code == 1
    assert "never called" in result.output and "self.unused" in result.output


def test_misspelled_module_path_suggests(cli, tiny_spec, tiny_model, write):
    spec = write("spec.yaml", tiny_spec.read_text().replace("module: head", "module: haed"))
    result = cli("check", spec, tiny_model)
    assert result.exit_code == 1 and "did you mean 'head'" in result.output


def test_unbound_symbol_fails_not_passes(cli, tiny_spec, tiny_model, write):
    spec = write("spec.yaml", tiny_spec.read_text().replace("h: h", "h: hidden"))
    result = cli("check", spec, tiny_model)
    assert result.exit_code == 1
    assert "symbol.bound" in result.output and "forward outputs: h, logit" in result.output


def test_spec_that_checks_nothing_cannot_pass(cli, tiny_model, write):
    spec = write("empty.yaml", "version: 1\nname: e\ninputs:\n  x: {role: invariant}\n")
    assert cli("check", spec, tiny_model).exit_code == 2


def test_bad_inputs_exit_2_with_one_paragraph(cli, tiny_spec, tiny_model, write):
    broken = write("broken.py", "raise ValueError('nope')\n")
    bad_yaml = write("bad.yaml", "version: 1\nname: [x\n")
    for args in [(bad_yaml, tiny_model), (tiny_spec, broken), (tiny_spec, "missing.py"), ("nospec.yaml", tiny_model)]:
        result = cli("check", *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert "Fix:" in result.output


def test_bad_fail_on_is_a_usage_error(cli, tiny_spec, tiny_model):
    result = cli("check", tiny_spec, tiny_model, "--fail-on", "sometimes")
    assert result.exit_code == 2 and "--fail-on" in result.output


def test_explain_known_and_unknown(cli):
    assert "never called" in cli("explain", "component.called").output
    result = cli("explain", "component.caled")
    assert result.exit_code == 2 and "did you mean 'component.called'" in result.output


def _modules_loaded_by(argv: list[str]) -> set[str]:
    code = (
        "import sys, runpy; sys.argv = ['alignguard'] + %r\n"
        "try:\n    runpy.run_module('alignguard', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "import json; print('MODULES=' + json.dumps(sorted(sys.modules)))" % argv
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.split("MODULES=")[-1]))


def test_help_and_schema_do_not_import_torch():
    assert "torch" not in _modules_loaded_by(["--help"])
    assert "torch" not in _modules_loaded_by(["schema"])


def test_schema_is_json_schema(cli):
    schema = json.loads(cli("schema").output)
    assert schema["title"] == "Spec" and "inputs" in schema["properties"]
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)


def test_check_freezes_torchs_import_time_heap(tiny_spec, tiny_model):
    """The CLI moves torch's ~1e6 import-time objects out of the collector's reach (alignguard/cli/heap.py)."""
    script = (
        "import gc, sys\n"
        "from typer.testing import CliRunner\n"
        "from alignguard.cli.app import app\n"
        f"result = CliRunner().invoke(app, ['check', {str(tiny_spec)!r}, {str(tiny_model)!r}])\n"
        "print(result.exit_code, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    exit_code, frozen = map(int, out.split())
    assert exit_code == 0 and frozen > 100_000
