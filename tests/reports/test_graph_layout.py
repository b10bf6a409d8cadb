"""The offline SVG layout (graph_layout, used without graphviz) draws components as blocks: no two
dashed boxes overlap unless one is nested in the other, every node sits inside the boxes of its
components and outside every other box. On CMDN, a zoo model with five components, and CMDN with
a component nested in another."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignguard.api import graph_view
from alignguard.report.graph_layout import layout
from alignguard.report.graph_render import _layout_label

ROOT = Path(__file__).resolve().parents[2]
CMDN = (ROOT / "specs" / "cmdn.yaml", ROOT / "models" / "cmdn.py")
BYOL = (ROOT / "examples" / "zoo" / "byol" / "spec.yaml", ROOT / "examples" / "zoo" / "byol" / "byol.py")
NESTED = "components:\n  shift:\n    module: modulator.shift\n"


def rect_of_box(box) -> tuple[float, float, float, float]:
    return box.x - box.w / 2, box.y, box.x + box.w / 2, box.y + box.h


def rect_of_frame(frame) -> tuple[float, float, float, float]:
    return frame.x, frame.y, frame.x + frame.w, frame.y + frame.h


def intersect(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def members(view, name) -> set[str]:
    path = view.clusters[name]
    return {node for node, data in view.graph.nodes(data=True)
            if data["module"] == path or data["module"].startswith(path + ".") or not path}


@pytest.mark.parametrize("case", ["cmdn", "byol", "cmdn-nested"])
def test_component_boxes_never_overlap_and_hold_exactly_their_nodes(case, tmp_path):
    spec, model = {"cmdn": CMDN, "byol": BYOL, "cmdn-nested": CMDN}[case]
    if case == "cmdn-nested":
        text = spec.read_text()
        assert "\ncomponents:\n" in text
        spec = tmp_path / "cmdn-nested.yaml"
        spec.write_text(text.replace("\ncomponents:\n", "\n" + NESTED, 1))
    view = graph_view(spec, model)
    boxes, width, height, frames = layout(view, _layout_label)
    drawn = {name for name in view.clusters if any(d["cluster"] == name for _, d in view.graph.nodes(data=True))}
    assert set(frames) >= drawn and len(frames) >= (4 if case != "byol" else 5)
    if case == "cmdn-nested":
        assert contains(rect_of_frame(frames["modulator"]), rect_of_frame(frames["shift"]))
    names = sorted(frames)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = rect_of_frame(frames[a]), rect_of_frame(frames[b])
            assert not intersect(ra, rb) or contains(ra, rb) or contains(rb, ra), (a, b, ra, rb)
    for name, frame in frames.items():
        inside = members(view, name)
        for node, box in boxes.items():
            if node in inside:
                assert contains(rect_of_frame(frame), rect_of_box(box)), (name, node)
            else:
                assert not intersect(rect_of_frame(frame), rect_of_box(box)), (name, node)
    rects = [rect_of_box(box) for box in boxes.values()] + [rect_of_frame(f) for f in frames.values()]
    assert all(r[0] >= 0 and r[1] >= 0 and r[2] <= width and r[3] <= height for r in rects)
    node_rects = [rect_of_box(box) for box in boxes.values()]
    assert not any(intersect(a, b) for i, a in enumerate(node_rects) for b in node_rects[i + 1:])
