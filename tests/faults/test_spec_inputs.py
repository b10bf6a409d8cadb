"""Spec files a careless or hostile user can write: encodings, sizes, nesting, aliases, dates, numbers."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from alignguard.errors import SpecError
from alignguard.spec.bounded import MAX_BYTES, MAX_DEPTH, MAX_NODES
from alignguard.spec.loader import load_spec, parse_spec
from tests.faults.conftest import TINY_MODEL, TINY_SPEC, assert_no_traceback, run_cli

VALID = TINY_SPEC.read_text()
PROBE = VALID + "probes:\n  batch_independence:\n    symbols: [logit]\n    tolerance: {value}\n"


def alias_bomb(levels: int = 9) -> str:
    lines = ["version: 1", "name: bomb", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines + [f"inputs: *a{levels - 1}"]) + "\n"


def spec_error(path) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value


@pytest.mark.parametrize("name, data, expected, where", [
    ("utf16.yaml", VALID.encode("utf-16"), "UTF-16", ":1:1"),
    ("latin1.yaml", "version: 1\nname: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9", ":2:10"),
    ("binary.yaml", b"version: 1\n\x00\x01\x02\xff", "NUL byte", ":2:1"),
])
def test_a_spec_that_is_not_utf8_text_is_named_and_located(write, name, data, expected, where):
    path = write(name, data)
    error = spec_error(path)
    assert expected in error.what and error.where == f"{path}{where}"


def test_a_utf8_byte_order_mark_is_accepted(write):
    assert load_spec(write("bom.yaml", b"\xef\xbb\xbf" + VALID.encode())).name == "tiny"


def test_a_directory_is_not_reported_as_missing(tmp_path):
    assert "is a directory" in spec_error(tmp_path).what
    outcome = run_cli("check", TINY_SPEC, tmp_path)
    assert outcome.code == 2 and "is a directory" in outcome.stderr


def test_an_oversized_spec_names_the_limit(write):
    path = write("big.yaml", VALID + "#" * MAX_BYTES)
    assert f"{MAX_BYTES // 1024} KiB limit" in spec_error(path).what


def test_the_alias_bomb_fails_fast_and_small(write):
    path = write("bomb.yaml", alias_bomb())
    assert path.stat().st_size < 1024
    tracemalloc.start()
    started = time.perf_counter()
    error = spec_error(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert f"more than {MAX_NODES:,} values" in error.what and "aliases" in error.what
    assert elapsed < 10 and peak < 50e6, (elapsed, peak)  # it once took 88 s and 5 GB


def test_error_messages_quote_a_value_without_rendering_it():
    """A value of 10^10 shared leaves (what nine alias levels make) is quoted in microseconds."""
    from alignguard.spec.loader import _short

    value: object = ["lol"] * 10
    for _ in range(9):
        value = [value] * 10
    started = time.perf_counter()
    text = _short({"role": value})
    assert time.perf_counter() - started < 1.0  # rendering the 10^10 leaves would never finish
    assert len(text) <= 60 and text.startswith("{'role': [[[[") and text.endswith("...")


def parse_spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "inline.yaml")
    return caught.value


@pytest.mark.parametrize("depth, expected", [(20_000, f"deeper than {MAX_DEPTH} levels"),
                                             (MAX_DEPTH + 5, f"deeper than {MAX_DEPTH} levels")])
def test_runaway_nesting_names_the_limit(depth, expected):
    error = parse_spec_error("version: 1\nname: x\ninputs: " + "[" * depth + "]" * depth + "\n")
    assert expected in error.what


def test_deep_block_nesting_is_refused_too():
    text = "version: 1\nname: x\ninputs:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(MAX_DEPTH + 2))
    assert f"deeper than {MAX_DEPTH} levels" in parse_spec_error(text).what


@pytest.mark.parametrize("date", ["2024-13-45", "2024-02-30", "2023-00-10"])
def test_an_impossible_waiver_date_is_a_located_spec_error(date):
    text = VALID + f"waivers:\n  - check: noise.present\n    reason: x\n    expires: {date}\n"
    error = parse_spec_error(text)
    assert date in error.what and "cannot be read" in error.what
    assert error.where == f"inline.yaml:{VALID.count(chr(10)) + 4}:14"


@pytest.mark.parametrize("value, expected", [(".inf", "finite"), ("-.inf", "finite"), (".nan", "finite"),
                                             ("-1", "greater than or equal to 0"), ("1e999", "finite")])
def test_thresholds_must_be_finite_and_in_range(value, expected):
    error = parse_spec_error(PROBE.replace("{value}", value))
    assert "tolerance" in error.what and expected in error.what


@pytest.mark.parametrize("rule", ["ranges:\n  - symbol: z\n    max: {value}\n",
                                  "weights:\n  - params: encoder.weight\n    max_norm: {value}\n"])
def test_design_rule_numbers_must_be_finite_too(rule):
    error = parse_spec_error(VALID + rule.format(value=".inf"))
    assert "finite" in error.what


def test_a_huge_integer_is_a_located_error_not_a_crash():
    error = parse_spec_error(VALID + "seed: " + "9" * 5000 + "\n")
    assert "cannot be read" in error.what and len(str(error)) < 600


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n", "42\n"])
def test_a_spec_that_is_not_a_mapping_says_so(text):
    assert "must be a YAML mapping" in parse_spec_error(text).what


@pytest.mark.parametrize("name, data", [("bomb.yaml", alias_bomb()), ("utf16.yaml", VALID.encode("utf-16")),
                                        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000)])
def test_the_cli_turns_each_into_exit_2_with_a_located_message(write, name, data):
    outcome = run_cli("check", write(name, data), TINY_MODEL)
    assert outcome.code == 2 and outcome.stderr.startswith("spec error:") and "Where:" in outcome.stderr
    assert_no_traceback(outcome)


@pytest.mark.parametrize("text, line", [
    ("version: 1\nname: t\ninputs:\n  c: {role: context}\n?  x:\n    role: invariant\n", 5),  # the fuzzer's find
    ("version: 1\nname: t\n? [a, b]\n: 1\n", 3),
])
def test_a_mapping_or_list_used_as_a_key_is_a_located_spec_error(write, text, line):
    # ruamel's round-trip loader raised TypeError (unhashable CommentedMap): exit 2 "internal error"
    error = spec_error(write("complex.yaml", text))
    assert "complex key" in error.what and f"complex.yaml:{line}:" in str(error)
