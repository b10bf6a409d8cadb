"""What the captures cannot follow is said, never silently dropped (docs/capture.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alignguard.errors import CaptureError
from alignguard.graph.capture import capture_graph


class RoundTrip(nn.Module):
    def forward(self, x, y):
        repeats = int(y.abs().sum()) % 3 + 1  # an int leaves torch and comes back as a shape
        rows = y[:, 0].tolist()
        return {"out": x.repeat(repeats, 1) * len(rows)}


def batch():
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(4, 6, generator=g), "y": torch.randn(4, 6, generator=g)}


def test_values_leaving_torch_are_named_in_the_capture_note():
    graph = capture_graph(RoundTrip(), batch())
    assert graph.capture.startswith("eager")
    note = graph.capture_note
    assert "values left torch where the recorder cannot follow them" in note
    assert "int() at" in note and "tolist() at" in note and "test_capture_limits.py:" in note


def test_a_float_from_item_is_followed_and_not_reported():
    class Scale(nn.Module):
        def forward(self, x, y):
            return {"out": x * y.abs().mean().item()}

    graph = capture_graph(Scale(), batch(), method="eager")
    assert "values left torch" not in graph.capture_note
    assert graph.reaches(graph.inputs["y"], graph.outputs["out"])


def test_forcing_fx_on_an_untraceable_idiom_is_a_capture_error_with_the_line():
    with pytest.raises(CaptureError) as caught:
        capture_graph(RoundTrip(), batch(), method="fx")
    assert caught.value.exit_code == 2
    assert "torch.fx could not trace the model" in str(caught.value) and "test_capture_limits.py:" in str(caught.value)
