"""Named input parts: the spec's slices, their validation, and which graph nodes read them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from identifiability_zoo import cmdn, example_batch, whole_context_cmdn
from structural_helpers import one, run_checks
from torch import nn

from alignguard.errors import SpecError
from alignguard.graph.capture import capture_graph
from alignguard.spec.selection import SelectionSyntaxError, describe_key, overlaps, parse_selection
from alignguard.spec.loader import load_spec, parse_spec

SPEC = Path(__file__).resolve().parents[2] / "specs" / "cmdn.yaml"
HEADER = "version: 1\nname: parts\ninputs:\n  x: {role: invariant}\n"


def test_selections_and_their_overlap_on_a_shape():
    assert parse_selection("[:, :-1]") == (("all",), ("slice", None, -1, None))
    assert parse_selection("[..., 8]") == (("ellipsis",), ("index", 8))
    shape = (4, 9)
    assert not overlaps(parse_selection("[:, :-1]"), parse_selection("[:, -1]"), shape)
    assert overlaps(parse_selection("[:, 4:]"), parse_selection("[:, -1]"), shape)
    assert not overlaps(describe_key((slice(None), slice(None, 8))), parse_selection("[..., -1]"), shape)
    assert describe_key(torch.tensor([True])) is None  # a mask: not described, so read as the whole input


@pytest.mark.parametrize("text, message", [
    ("[:, c]", "only integers"), (":, 1", "in brackets"), ("[:, :]", "selects the whole input"),
    ("[..., ..., 1]", "more than one"),
])
def test_bad_slices_are_refused(text, message):
    with pytest.raises(SelectionSyntaxError, match=message):
        parse_selection(text)


def test_a_bad_part_is_a_spec_error_with_its_line():
    with pytest.raises(SpecError) as error:
        parse_spec(HEADER + '  c: {role: context, parts: {access: "[:, a]"}}\n')
    text = str(error.value)
    assert "part 'access'" in text and "<spec>:5:" in text and "basic indexing" in text


def test_part_names_share_the_namespace():
    with pytest.raises(SpecError, match="'x' is defined twice"):
        parse_spec(HEADER + '  c: {role: context, parts: {x: "[:, -1]"}}\n')


def test_parts_are_flow_endpoints_but_not_probe_contexts():
    spec = parse_spec(HEADER + '  c: {role: context, parts: {access: "[:, -1]"}}\n'
                      "symbols: {y: y}\nflow: {forbidden: [{from: access, to: y}]}\n")
    assert spec.input_parts() == {"access": ("c", "[:, -1]")}
    with pytest.raises(SpecError, match="input 'access' is not defined"):
        parse_spec(HEADER + '  c: {role: context, parts: {access: "[:, -1]"}}\n'
                   "symbols: {y: y}\nprobes: {swap_invariance: {symbol: y, context: access}}\n")


class Split(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 1), nn.Linear(1, 1)

    def forward(self, c):
        c = c.float()  # layout-keeping: the slices below still select columns of c
        return {"first": self.a(c[:, :8]), "last": self.b(c.narrow(1, 8, 1)), "whole": c.sum(dim=1)}


@pytest.mark.parametrize("method", ["fx", "eager"])
def test_part_readers_follow_slices_in_both_captures(method):
    graph = capture_graph(Split(), {"c": torch.randn(4, 9)}, method=method)
    last = parse_selection("[:, -1]")
    readers = graph.part_readers("c", last, (4, 9))
    reached = graph.reachable(readers)
    assert graph.outputs["last"] in reached and graph.outputs["whole"] in reached
    assert graph.outputs["first"] not in reached


def test_the_whole_context_modulator_breaks_the_part_flows():
    results = run_checks(whole_context_cmdn(), "flow.forbidden", spec=load_spec(SPEC), batch_fn=example_batch)
    assert one(results, "flow.forbidden", "flow accessibility -> M").failed
    assert one(results, "flow.forbidden", "flow descriptor -> T").failed
    fixed = run_checks(cmdn.build_model(), "flow.forbidden", spec=load_spec(SPEC), batch_fn=example_batch)
    assert not any(r.failed for r in fixed)
