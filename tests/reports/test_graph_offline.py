"""The graph page renders with the network off: loaded in headless Chromium, the screenshot
shows the nodes' fills, the spec symbols' purple outlines and the forbidden path's red."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from alignguard.report import graph_render
from tests.reports.conftest import HERE
from tests.reports.test_graph_command import SPEC

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium)")
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]  # every fetch fails
COLOURS = {"input fill": (0xcf, 0xe8, 0xff), "symbol outline": (0x6a, 0x3d, 0x9a), "forbidden red": (255, 0, 0),
           "formula fill": (0xff, 0xf3, 0xa3)}


def screenshot(page, out):
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *OFFLINE,
                    "--window-size=1200,1400", f"--screenshot={out}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    import matplotlib.image

    return (matplotlib.image.imread(out)[..., :3] * 255).round().astype(int)


def pixels(image, colour) -> int:
    """How many pixels are within 8 levels of `colour` in every channel."""
    return int((abs(image - colour).max(axis=-1) <= 8).sum())


def test_the_page_draws_the_graph_offline(cli, write, workspace, monkeypatch):
    monkeypatch.setattr(graph_render, "has_graphviz", lambda: False)
    shutil.copy(HERE / "models" / "leaky.py", workspace / "leaky.py")
    assert cli("graph", write("leaky.yaml", SPEC), "leaky.py", "-o", "g.html").exit_code == 0
    image = screenshot(workspace / "g.html", workspace / "g.png")
    counts = {name: pixels(image, colour) for name, colour in COLOURS.items()}
    assert all(count > 50 for count in counts.values()), counts


def test_a_page_that_needs_the_network_draws_nothing_here(workspace):
    """The control: the Mermaid page this replaced (a script from a CDN) shows no graph offline."""
    page = workspace / "cdn.html"
    page.write_text('<!DOCTYPE html><html><body><pre class="mermaid">flowchart TB\n  a["input x"] --> b</pre>'
                    '<script type="module">import m from "https://cdn.jsdelivr.net/npm/mermaid@11/dist/'
                    'mermaid.esm.min.mjs"; m.initialize({startOnLoad: true});</script></body></html>')
    image = screenshot(page, workspace / "cdn.png")
    assert {name: pixels(image, colour) for name, colour in COLOURS.items()} == dict.fromkeys(COLOURS, 0)
