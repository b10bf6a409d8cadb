"""identifiability on a two-branch additive model y = a(x) + b(x): the shift (a+δ(x), b−δ(x)) is a live gauge
only when training can move both branches. A branch the design freezes (gradients.frozen) or the model
freezes (requires_grad=False) pins the orbit: a note that names what pins it, not a finding."""

from __future__ import annotations

import pytest
import torch
from structural_helpers import run_checks
from torch import nn

from alignguard.results import Status

SPEC = """
version: 1
name: two-branch
inputs:
  x: {role: invariant}
symbols: {a: a, b: b, y: y}
components:
  left: {module: left}
  right: {module: right}
formulas:
  - equation: y = a + b
"""
FROZEN = SPEC + "gradients:\n  frozen: [right]\n"


class TwoBranch(nn.Module):
    def __init__(self, freeze_right: bool = False, shared: bool = False):
        super().__init__()
        self.left, self.right = nn.Linear(4, 1), nn.Linear(4, 1)
        self.shared = nn.Linear(4, 4) if shared else None
        if freeze_right:
            self.right.requires_grad_(False)

    def forward(self, x):
        h = self.shared(x) if self.shared is not None else x
        a, b = self.left(x).squeeze(-1), self.right(h).squeeze(-1)
        return {"a": a, "b": b, "y": a + b}


def batch(batch_size: int = 8, seed: int = 0) -> dict:
    return {"x": torch.randn(batch_size, 4, generator=torch.Generator().manual_seed(seed))}


def shift(model, spec: str):
    results = run_checks(model, "identifiability", spec=spec, batch_fn=batch)
    chosen = [r for r in results if r.details.get("moved") == ["a", "b"]]
    assert len(chosen) == 1, [(r.status, r.found) for r in results]
    return chosen[0]


def test_both_branches_trainable_leave_a_gauge_that_depends_on_x():
    result = shift(TwoBranch(), SPEC)
    assert result.status is Status.FAIL
    assert "a and b are determined only up to δ(x)" in result.found
    assert result.details["confirmed"] is True


def test_a_branch_the_spec_freezes_pins_the_shift():
    result = shift(TwoBranch(), FROZEN)  # params.frozen judges whether the model obeys; here the design is judged
    assert result.status is Status.PASS
    assert result.found.startswith("note: (a+δ, b−δ) predicts the same, but b is pinned by frozen right "
                                   "(gradients.frozen)")
    assert result.details["pinned_by"] == {"b": "frozen right (gradients.frozen)"}


def test_requires_grad_false_pins_the_shift_without_a_spec_rule():
    result = shift(TwoBranch(freeze_right=True), SPEC)
    assert result.status is Status.PASS
    assert "b is pinned by right (requires_grad=False)" in result.found


def test_a_frozen_branch_that_reads_a_trainable_layer_still_moves():
    # b = frozen(shared(x)): the shared layer trains, so b moves and the gauge stays live
    result = shift(TwoBranch(freeze_right=True, shared=True), FROZEN)
    assert result.status is Status.FAIL
    assert "b" not in result.details["pinned"]


@pytest.mark.parametrize("frozen", ["left", "right"])
def test_either_side_pinned_pins_the_orbit(frozen):
    result = shift(TwoBranch(), SPEC + f"gradients:\n  frozen: [{frozen}]\n")
    assert result.status is Status.PASS
    assert result.details["pinned_by"] == {"ab"[frozen == "right"]: f"frozen {frozen} (gradients.frozen)"}


class ThreeBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.middle, self.right = nn.Linear(4, 1), nn.Linear(4, 1), nn.Linear(4, 1)

    def forward(self, x):
        a, b, c = (m(x).squeeze(-1) for m in (self.left, self.middle, self.right))
        return {"a": a, "b": b, "c": c, "y": a + b + c}


def test_a_pinned_symbol_leaves_the_symmetry_among_the_others_live():
    spec = SPEC.replace("symbols: {a: a, b: b, y: y}", "symbols: {a: a, b: b, c: c, y: y}").replace(
        "y = a + b", "y = a + b + c") + "gradients:\n  frozen: [right]\n"
    spec = spec.replace("  right: {module: right}", "  middle: {module: middle}\n  right: {module: right}")
    results = run_checks(ThreeBranch(), "identifiability", spec=spec, batch_fn=batch)
    verdicts = {tuple(r.details["moved"]): r.status for r in results if "moved" in r.details}
    assert verdicts == {("a", "b"): Status.FAIL, ("a", "c"): Status.PASS, ("b", "c"): Status.PASS}


class ExpTimes(nn.Module):
    """y = exp(a(x))·b(x): (a+δ(x), e^(−δ(x))·b) predicts the same, a log-scale shift."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(4, 1), nn.Linear(4, 1)

    def forward(self, x):
        a, b = self.left(x).squeeze(-1), self.right(x).squeeze(-1)
        return {"a": a, "b": b, "y": torch.exp(a) * b}


def test_a_log_scale_shift_on_the_model():
    spec = SPEC.replace("y = a + b", "y = exp(a) * b")
    result = shift(ExpTimes(), spec)
    assert result.status is Status.FAIL
    assert "(a+δ(x), e^(−δ(x))·b) predicts the same" in result.found
    assert result.details["confirmed"] is True
    assert shift(ExpTimes(), spec + "gradients:\n  frozen: [right]\n").status is Status.PASS
