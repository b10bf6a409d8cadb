"""Data files and report destinations: encodings, damaged archives, files where folders belong, and
outputs that would overwrite an input or cannot be written."""

from __future__ import annotations

import gzip

import pytest

from tests.faults.conftest import TINY_MODEL, TINY_SPEC, assert_no_traceback, run_cli


def convert(tmp_path, labels):
    genome = tmp_path / "genome.fa"
    genome.write_text(">chr1\n" + "ACGT" * 100 + "\n")
    descriptors = tmp_path / "descriptors.tsv"
    descriptors.write_text("cell\tf1\nK562\t0.5\n")
    return run_cli("data", "convert", "--genome", genome, "--labels", labels, "--descriptors", descriptors,
                   "--out", tmp_path / "dataset")


@pytest.mark.parametrize("name, data, expected", [
    ("labels.tsv.gz", b"chrom\tstart\tend\tK562\n", "not a complete gzip file"),
    ("labels.tsv.gz", gzip.compress(b"chrom\tstart\tend\tK562\nchr1\t0\t200\tB\n", mtime=0)[:20],
     "not a complete gzip file"),
    ("labels.tsv", "chrom\tstart\tend\tK\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ("labels.tsv", "chrom\tstart\tend\tK562\n".encode("utf-16"), "not UTF-8 text"),
], ids=["plain-text-named-gz", "truncated-gzip", "latin-1", "utf-16"])
def test_a_bad_labels_file_is_a_data_error_naming_it(tmp_path, name, data, expected):
    labels = tmp_path / name
    labels.write_bytes(data)
    outcome = convert(tmp_path, labels)
    assert outcome.code == 2 and expected in outcome.stderr and str(labels) in outcome.stderr, outcome.text
    assert_no_traceback(outcome)
    assert not (tmp_path / "dataset").exists()


def test_synth_force_never_replaces_a_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    outcome = run_cli("data", "synth", "--out", target, "--force", "--n-loci", "60")
    assert outcome.code == 2 and "is a file, not a dataset directory" in outcome.stderr
    assert target.read_text() == "my notes"


@pytest.mark.parametrize("option", ["json:{spec}", "markdown:{model}", "text:{spec}", "sarif:{model}"])
def test_an_output_never_overwrites_an_input(tmp_path, option):
    spec, model = tmp_path / "spec.yaml", tmp_path / "model.py"
    spec.write_bytes(TINY_SPEC.read_bytes())
    model.write_bytes(TINY_MODEL.read_bytes())
    outcome = run_cli("check", spec, model, "--output", option.format(spec=spec, model=model))
    assert outcome.code == 2 and "is one of the command's inputs" in outcome.stderr, outcome.text
    assert spec.read_bytes() == TINY_SPEC.read_bytes() and model.read_bytes() == TINY_MODEL.read_bytes()


def test_init_and_graph_never_overwrite_the_model(tmp_path):
    model = tmp_path / "model.py"
    model.write_bytes(TINY_MODEL.read_bytes())
    assert run_cli("init", model, "--output", model, "--force").code == 2
    assert run_cli("graph", TINY_SPEC, model, "--output", model).code == 2
    assert model.read_bytes() == TINY_MODEL.read_bytes()


def test_an_unwritable_step_summary_is_exit_2_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing-folder" / "summary.md"))
    outcome = run_cli("check", TINY_SPEC, TINY_MODEL, "--format", "github")
    assert outcome.code == 2 and "GITHUB_STEP_SUMMARY" in outcome.stderr, outcome.text
    assert_no_traceback(outcome)


def test_an_output_into_a_directory_path_is_exit_2(tmp_path):
    outcome = run_cli("check", TINY_SPEC, TINY_MODEL, "--output", f"json:{tmp_path}")
    assert outcome.code == 2 and "cannot write the json report" in outcome.stderr
