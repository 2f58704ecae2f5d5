"""The HTML viewer and timeline PNG: hostile text renders as text, in a real browser."""

from __future__ import annotations

import io
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image

from action100m.console import main
from action100m.core.tree import Node, SegmentTree
from action100m.datasets import PartitionLoaders
from action100m.pipelines.export.nodes import render_views
from action100m.release.run_index import render_run_index, video_entry
from action100m.release.viewer import render_html, render_timeline_png

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


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed"
)


def browser_dom(url: str, profile: Path) -> str:
    """The DOM of a page after headless chromium ran its scripts (and media)."""
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


@needs_chromium
def test_browser_renders_hostile_text_as_text(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(render_html(_hostile_tree(), "vid.mp4"))
    dom = browser_dom(path.as_uri(), tmp_path / "profile")
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


# Names that break a link unless it is URL-encoded: a fragment, a query, an
# escape that would decode to another name, spaces and non-ASCII letters.
AWKWARD_NAMES = ("a#b", "q?x=1", "p%41c", "été 漢字")


def _views(tmp_path: Path, source: Path) -> tuple[Path, dict[str, str]]:
    """The export's viewer pages for videos named AWKWARD_NAMES (real footage)."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    manifest, trees = [], {}
    for uid in AWKWARD_NAMES:
        shutil.copy(source, videos / f"{uid}.mp4")
        manifest.append({"video_uid": uid, "path": str(videos / f"{uid}.mp4")})
        node = Node("r", None, 0, 0.0, 15.0, "act", "a caption", "frame")
        trees[uid] = SegmentTree(uid, [node], metadata={"title": uid}).to_release_json()
    loaders = PartitionLoaders({u: (lambda t=t: t) for u, t in trees.items()})
    pages, _ = render_views(loaders, manifest, str(out))
    (out / "viewer").mkdir(parents=True)
    for uid, page in pages.items():
        (out / "viewer" / f"{uid}.html").write_text(page())
    return out, pages


@needs_chromium
def test_viewer_video_plays_whatever_the_file_name(tmp_path, cut_videos):
    folder, _ = cut_videos
    out, _ = _views(tmp_path, folder / "cuts_a.mp4")
    for uid in AWKWARD_NAMES:
        page = out / "viewer" / f"{uid}.html"
        dom = browser_dom(page.as_uri(), tmp_path / "profile")
        assert 'data-state="loaded"' in dom, (uid, dom[:2000])
        assert 'data-state="error"' not in dom


def _index(tmp_path: Path) -> Path:
    entries = [
        video_entry(
            {
                "video_uid": uid,
                "metadata": {"title": f"{HOSTILE} {uid}"},
                "nodes": [{"gpt": None}] * (i + 1) + [{"gpt": {}}] * i,
            },
            duration=10.0 * ((i * 7) % 4 + 1),
        )
        for i, uid in enumerate(AWKWARD_NAMES)
    ]
    errors = [
        {"video_uid": "broken", "stage": "ingest", "reason": CLOSER, "source": "x"},
        {
            "video_uid": "a#b",
            "stage": "aggregation",
            "node_id": "n1",
            "field": "gpt",
            "reason": "failed after 5 attempts: HTTP 500",
        },
    ]
    metrics = {"invariant_pass_rate": 1.0, "videos": 4, "na_rate": None}
    path = tmp_path / "out" / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_run_index(entries, errors, metrics))
    return path


def test_index_page_embeds_no_live_markup(tmp_path):
    page = _index(tmp_path).read_text()
    assert page.count("<script") == 2
    assert HOSTILE not in page and CLOSER not in page


@needs_chromium
def test_index_lists_videos_and_failures_sorted_and_linked(tmp_path, cut_videos):
    folder, _ = cut_videos
    out, _ = _views(tmp_path, folder / "cuts_a.mp4")
    (out / "timelines").mkdir()
    for uid in AWKWARD_NAMES:
        (out / "timelines" / f"{uid}.png").write_bytes(
            render_timeline_png(_hostile_tree())
        )
    index = _index(tmp_path)
    dom = browser_dom(index.as_uri() + "#sort=-duration", tmp_path / "profile")
    body = dom.split('<table id="videos">')[1].split("</table>")[0]
    rows = body.split("<tr>")[2:]  # after the heading row
    durations = [float(r.split('class="num">')[1].split("<")[0]) for r in rows]
    assert len(rows) == len(AWKWARD_NAMES)
    assert durations == sorted(durations, reverse=True) and len(set(durations)) > 1
    assert 'data-dir="desc"' in body
    # Titles and reasons are text; every link resolves to its file.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a#b" in body
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in dom
    assert "failed after 5 attempts: HTTP 500" in dom and "aggregation" in dom
    hrefs = [h.split('"')[0] for h in body.split('href="')[1:]]
    assert len(hrefs) == 2 * len(AWKWARD_NAMES)
    for href in hrefs:
        assert (index.parent / urllib.parse.unquote(href)).is_file(), href
    assert "invariant_pass_rate" in dom and "4 videos, 2 failures" in dom
