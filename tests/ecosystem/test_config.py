"""[tool.alignguard] discovery and validation."""

from __future__ import annotations

import pytest

from alignguard.config import ProjectConfig, find_config_file, load_config
from alignguard.errors import UsageError


def test_found_from_a_subfolder_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.alignguard]\nformat = "github"\nfail-on = "warning"\ntimeout = 30\n'
        '[[tool.alignguard.pairs]]\nspec = "specs/a.yaml"\nmodel = "models/a.py"\n')
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    config = load_config(deep)
    assert config.path == tmp_path / "pyproject.toml"
    assert config.format == ["github"] and config.fail_on == "warning" and config.timeout == 30
    [pair] = config.resolved_pairs()
    assert pair.spec == tmp_path / "specs/a.yaml" and pair.model == tmp_path / "models/a.py"
    assert pair.label == "a"


def test_a_pyproject_without_the_table_is_passed_over(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.alignguard]\nfail-on = 'warning'\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.ruff]\nline-length = 100\n")
    assert find_config_file(inner) == tmp_path / "pyproject.toml"


def test_no_file_gives_the_defaults(tmp_path):
    found = find_config_file(tmp_path)
    assert found is None or found.parent not in (tmp_path, *tmp_path.parents[:2])
    config = load_config(tmp_path) if found is None else ProjectConfig()
    assert config.pairs == [] and config.fail_on is None and config.format is None


def test_a_misspelled_key_names_the_line_and_the_known_keys(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.alignguard]\nfail_on = 'warning'\n")
    with pytest.raises(UsageError) as raised:
        load_config(tmp_path)
    text = str(raised.value)
    assert "[tool.alignguard] fail_on" in text and f"{tmp_path / 'pyproject.toml'}:5" in text
    assert "known keys: fail-on, format, output-format, pairs, timeout" in text


def test_a_wrong_value_and_bad_toml_are_usage_errors(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.alignguard]\nfail-on = 'fatal'\n")
    with pytest.raises(UsageError, match=r"fail-on: Input should be 'error' or 'warning'.*pyproject.toml:2"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.alignguard]\nfail-on = 'error\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        load_config(tmp_path)


def test_a_pair_needs_both_paths(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[[tool.alignguard.pairs]]\nspec = 'a.yaml'\n")
    with pytest.raises(UsageError, match=r"pairs.0.model: Field required.*pyproject.toml:1"):
        load_config(tmp_path)
