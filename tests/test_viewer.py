"""The HTML viewer and timeline PNG: hostile text renders as text, in a real browser."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image

from action100m.console import main
from action100m.tree import Node, SegmentTree
from action100m.viewer import render_html, render_timeline_png

HOSTILE = "<script>alert(1)</script>"
CLOSER = "</script><img src=x onerror=alert(2)>"


def _hostile_tree() -> SegmentTree:
    gpt = {
        "summary": {"brief": CLOSER, "detailed": "& more <b>bold</b>"},
        "action": {"brief": "cut <i>x</i>", "detailed": "Cut.", "actor": "a cook"},
    }
    nodes = [
        Node("r", None, 0, 0.0, 8.0, "act", HOSTILE, None, gpt),
        Node("a", "r", 1, 0.0, 4.0, "left", "a caption", "<svg onload=alert(3)>"),
        Node("b", "r", 1, 4.0, 8.0, "right", "b caption", "frame"),
    ]
    return SegmentTree("vid", nodes, metadata={"title": HOSTILE})


def test_page_embeds_no_live_markup():
    page = render_html(_hostile_tree(), "../videos/vid.mp4")
    assert page.count("<script") == 2  # the data block and the viewer's own code
    assert HOSTILE not in page and "<img" not in page and "<svg" not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert 'src="../videos/vid.mp4"' in page


def test_timeline_is_a_png():
    image = Image.open(io.BytesIO(render_timeline_png(_hostile_tree())))
    assert image.format == "PNG" and image.size[0] > 500


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_browser_renders_hostile_text_as_text(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(render_html(_hostile_tree(), "vid.mp4"))
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert '<h1 id="title">&lt;script&gt;alert(1)&lt;/script&gt;</h1>' in dom
    assert dom.count('class="seg') == 3  # the viewer's script ran and built the tree
    assert "<img" not in dom and "<svg" not in dom


def test_view_command_on_the_release_sample(release_sample, tmp_path, capsys):
    out = tmp_path / "view.html"
    assert (
        main(
            [
                "view",
                str(release_sample),
                "--video-uid",
                "hySSAAw4t24",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    page = out.read_text()
    assert "Journal with Me No. 39" in page and "917 nodes" in capsys.readouterr().out
    assert (
        main(["view", str(release_sample), "--video-uid", "nope", "--out", str(out)])
        == 1
    )
