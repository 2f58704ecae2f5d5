"""The HTML viewer and timeline PNG: hostile text renders as text, in a real browser."""

from __future__ import annotations

import io
import json
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
from action100m.release.run_index import (
    PAGE_SIZE,
    PAGES_FOLDER,
    render_run_index,
    video_entry,
)
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


def _index(tmp_path: Path, page_size: int = PAGE_SIZE) -> Path:
    """The run index of the awkward names, written as the evaluation saves it."""
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
        {"video_uid": "gone", "stage": "segmentation", "reason": "no frames"},
    ]
    metrics = {"invariant_pass_rate": 1.0, "videos": 4, "na_rate": None}
    path = tmp_path / "out" / "index.html"
    (path.parent / PAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    summary, pages = render_run_index(entries, errors, metrics, page_size=page_size)
    path.write_text(summary)
    for name, page in pages.items():
        (path.parent / PAGES_FOLDER / f"{name}.html").write_text(page())
    return path


def test_index_pages_embed_no_live_markup(tmp_path):
    index = _index(tmp_path)
    for page in (index, *(index.parent / PAGES_FOLDER).iterdir()):
        text = page.read_text()
        assert text.count("<script") == 2, page
        assert HOSTILE not in text and CLOSER not in text


def _hrefs(html_text: str) -> list[str]:
    return [h.split('"')[0] for h in html_text.split('href="')[1:]]


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
    summary = browser_dom(index.as_uri(), tmp_path / "profile")
    assert "invariant_pass_rate" in summary and "4 videos, 3 failures" in summary
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in summary
    assert "failed after 5 attempts: HTTP 500" in summary and "aggregation" in summary
    assert _hrefs(summary) == [f"{PAGES_FOLDER}/videos-00001.html"]
    listing = index.parent / PAGES_FOLDER / "videos-00001.html"
    dom = browser_dom(listing.as_uri() + "#sort=-duration", tmp_path / "profile")
    body = dom.split('<table id="videos">')[1].split("</table>")[0]
    rows = body.split("<tr>")[2:]  # after the heading row
    durations = [float(r.split('class="num">')[1].split("<")[0]) for r in rows]
    assert len(rows) == len(AWKWARD_NAMES)
    assert durations == sorted(durations, reverse=True) and len(set(durations)) > 1
    assert 'data-dir="desc"' in body
    # Titles are text; every link resolves to its file.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a#b" in body
    hrefs = _hrefs(body)
    assert len(hrefs) == 2 * len(AWKWARD_NAMES)
    for href in [*hrefs, *_hrefs(dom)]:
        assert (listing.parent / urllib.parse.unquote(href)).is_file(), href


def _data(page: Path) -> dict:
    """The JSON block a run-index page renders from."""
    block = page.read_text().split('<script id="data" type="application/json">')[1]
    return json.loads(block.split("</script>")[0])


def test_index_pages_a_large_run_failures_first(tmp_path):
    index = _index(tmp_path, page_size=2)
    pages = index.parent / PAGES_FOLDER
    assert sorted(p.name for p in pages.iterdir()) == [
        "failures-00002.html",
        "videos-00001.html",
        "videos-00002.html",
    ]
    summary = _data(index)
    assert summary["counts"] == "4 videos, 3 failures"
    assert [e["video_uid"] for e in summary["errors"]] == ["broken", "a#b"]
    assert summary["error_pages"] == [[f"{PAGES_FOLDER}/failures-00002.html", "3-3"]]
    assert summary["video_pages"] == [
        [f"{PAGES_FOLDER}/videos-00001.html", "1-2"],
        [f"{PAGES_FOLDER}/videos-00002.html", "3-4"],
    ]
    first, second = (
        _data(pages / "videos-00001.html"),
        _data(pages / "videos-00002.html"),
    )
    # The video with a failed node comes first; every video is listed once.
    assert first["videos"][0]["video_uid"] == "a#b"
    assert first["videos"][0]["failed"] == 1
    listed = [v["video_uid"] for v in first["videos"] + second["videos"]]
    assert sorted(listed) == sorted(AWKWARD_NAMES)
    assert first["counts"] == "videos 1-2 of 4"
    assert first["nav"] == [["../index.html", "summary"], ["videos-00002.html", "next"]]
    assert second["nav"] == [
        ["../index.html", "summary"],
        ["videos-00001.html", "previous"],
    ]
    last = _data(pages / "failures-00002.html")
    assert [e["reason"] for e in last["errors"]] == ["no frames"]
    assert last["counts"] == "failures 3-3 of 3"
    assert last["nav"] == [["../index.html", "summary"]]


def test_index_page_size_stays_bounded(tmp_path):
    """A listing page holds PAGE_SIZE videos however many the run has."""
    entries = (
        {
            "video_uid": f"v{i:07d}",
            "title": "t",
            "duration": 1.0,
            "nodes": 1,
            "annotated": 0,
        }
        for i in range(5 * PAGE_SIZE + 1)
    )
    summary, pages = render_run_index(entries, [], {})
    assert len(pages) == 6 and len(pages["videos-00006"]()) < len(
        pages["videos-00001"]()
    )
    assert len(summary) < 10_000
    assert pages["videos-00003"]().count('"video_uid": ') == PAGE_SIZE
