"""`alignguard data synth|convert|inspect`: exit codes, messages, and no torch import at CLI import time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from alignguard.cli.data import app

SMALL_ARGS = ["--n-loci", "300", "--cells-train", "2", "--cells-val", "1", "--cells-test", "1", "--seed", "5"]


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_synth_then_inspect(run, tmp_path):
    out = tmp_path / "bench"
    result = run("synth", "--out", out, *SMALL_ARGS, "--mechanism", "additive", "--background", "markov")
    assert result.exit_code == 0, result.output
    assert "Bayes AUPR" in result.output and "train_c1" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["mechanism"] == "additive" and manifest["config"]["background"] == "markov"

    result = run("inspect", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    train = manifest["splits"]["train"]["metrics"]
    assert summary["splits"]["train"]["metrics"]["bayes_aupr"] == train["bayes_aupr"]
    assert run("inspect", out, "--fast", "--no-per-cell").exit_code == 0

    again = run("synth", "--out", out, *SMALL_ARGS)
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output
    assert run("synth", "--out", out, *SMALL_ARGS, "--force").exit_code == 0


def test_format_json_puts_one_document_on_stdout_and_progress_on_stderr(tmp_path, small_dataset):
    from alignguard.cli.app import app as root

    runner = CliRunner()
    out = tmp_path / "bench"
    synth = runner.invoke(root, ["data", "synth", "--out", str(out), *SMALL_ARGS, "--shard-loci", "100",
                                 "--format", "json"])
    assert synth.exit_code == 0, synth.output
    written = json.loads(synth.stdout)  # stdout is the document alone
    assert written["path"] == str(out) and written["seconds"] >= 0 and written["checksums"] == "sizes only"
    assert "wrote" in synth.stderr and "shard 1/" in synth.stderr

    inspected = runner.invoke(root, ["data", "inspect", str(small_dataset), "-f", "json"])
    assert inspected.exit_code == 0, inspected.output
    summary = json.loads(inspected.stdout)
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    assert summary["checksums"] == "verified" and summary["loci"] == sum(manifest["loci"]["rows"])
    assert summary["cell_lines"] == manifest["cell_lines"] and set(summary["splits"]) == set(manifest["splits"])
    assert runner.invoke(root, ["data", "inspect", str(small_dataset), "--json"]).stdout == inspected.stdout
    wrong = runner.invoke(root, ["data", "inspect", str(small_dataset), "--format", "yaml"])
    assert wrong.exit_code == 2 and "yaml" in wrong.output


def test_synth_without_out_uses_the_cache(run, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNGUARD_CACHE", str(tmp_path))
    first = run("synth", *SMALL_ARGS)
    assert first.exit_code == 0, first.output
    entries = list((tmp_path / "data").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("synth-")
    assert run("synth", *SMALL_ARGS).exit_code == 0  # reused, not an "already exists" error


def test_inspect_reports_a_corrupt_shard_with_exit_2(run, tmp_path, small_dataset):
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = copy / "loci/seq-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x07")
    result = run("inspect", copy)
    assert result.exit_code == 2
    assert result.output.startswith("data error:") and "loci/seq-00000.npy" in result.output
    assert "Traceback" not in result.output
    assert run("inspect", copy, "--fast").exit_code == 0  # sizes still match: only the checksum sees it


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--positive-rate", "1.5"], "positive_rate"),
        (["--motif", "MA9999.1"], "MA9999.1"),
        (["--n-loci", "30", "--cells-train", "1"], "cells_train"),
    ],
)
def test_bad_synth_settings_exit_2(run, tmp_path, args, fragment):
    result = run("synth", "--out", tmp_path / "x", *args)
    assert result.exit_code == 2 and fragment in result.output
    assert not (tmp_path / "x").exists()


def test_convert_real_data_and_its_errors(run, real_files):
    out = real_files.root / "converted"
    base = ["convert", "--genome", real_files.genome, "--labels", real_files.labels, "--descriptors",
            real_files.descriptors, "--window", "100", "--val-chroms", "chr2", "--test-chroms", "chr3",
            "--test-cells", "GM12878"]  # fmt: skip
    result = run(*base, "--out", out, "--access-dir", real_files.root)
    assert result.exit_code == 0, result.output
    assert "real dataset" in result.output and "GM12878" in result.output

    missing = run(*base, "--out", real_files.root / "o2", "--access", f"K562={real_files.access['K562']}")
    assert missing.exit_code == 2 and "'HepG2' has labels but no accessibility file" in missing.output
    malformed = run(*base, "--out", real_files.root / "o3", "--access", "K562")
    assert malformed.exit_code == 2 and "CELL=PATH" in malformed.output


def test_cli_module_does_not_import_torch():
    code = "import sys, alignguard.cli.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
