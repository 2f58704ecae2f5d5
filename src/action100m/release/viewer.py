"""Views of a run: a timeline PNG and an HTML viewer per video, and an index page.

Every page is self-contained. It embeds its data as JSON (with ``<``, ``>`` and
``&`` escaped so no text can close the script element) and builds every element
with ``textContent``: titles, captions, annotations and error reasons always
render as text. Links to files are relative and URL-encoded, so names with
``#``, ``?``, ``%``, spaces or non-ASCII letters still resolve.
"""

from __future__ import annotations

import html
import io
import json
import os
import urllib.parse
from typing import Any

from action100m.core.tree import SegmentTree

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1rem;max-width:1200px}
video{width:100%;max-height:50vh;background:#000}
#tree{position:relative;margin:.5rem 0}
.row{position:relative;height:22px;margin:2px 0;background:#f3f3f3}
.seg{position:absolute;top:0;height:100%;box-sizing:border-box;border:1px solid #fff;
 background:#8fb3d9;cursor:pointer;overflow:hidden;font-size:11px;white-space:nowrap;
 padding:0 2px}
.seg.gpt{background:#5b8fc7;color:#fff}.seg.sel{outline:2px solid #d33}
#details dt{font-weight:600;margin-top:.5rem}#details dd{margin:0 0 0 1rem;white-space:pre-wrap}
</style></head><body>
<h1 id="title"></h1>
<video id="player" controls preload="metadata" src="__VIDEO__"></video>
<p id="video-note"></p>
<div id="tree"></div>
<dl id="details"><dd>Click a segment.</dd></dl>
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
const player = document.getElementById('player');
player.addEventListener('loadedmetadata', () => { player.dataset.state = 'loaded'; });
player.addEventListener('error', () => {
  player.dataset.state = 'error';
  let src = player.getAttribute('src');
  try { src = decodeURI(src); } catch (e) { /* shown as written */ }
  document.getElementById('video-note').textContent = 'The video could not be played from ' + src;
});
document.getElementById('title').textContent = data.title || data.video_uid;
const total = Math.max(...data.nodes.map(n => n.end));
const rows = {};
const treeBox = document.getElementById('tree');
const details = document.getElementById('details');
function fmt(t){const m=Math.floor(t/60);return m+':'+(t-60*m).toFixed(1).padStart(4,'0');}
function show(node, el){
  document.querySelectorAll('.seg.sel').forEach(e => e.classList.remove('sel'));
  el.classList.add('sel');
  player.currentTime = node.start;
  details.replaceChildren();
  const fields = [['Segment', fmt(node.start)+' \\u2192 '+fmt(node.end)+' (level '+node.level+')'],
    ['PLM action', node.plm_action], ['PLM caption', node.plm_caption],
    ['Middle-frame caption', node.llama3_caption]];
  if (node.gpt) fields.push(['Summary (brief)', node.gpt.summary.brief],
    ['Summary (detailed)', node.gpt.summary.detailed], ['Action (brief)', node.gpt.action.brief],
    ['Action (detailed)', node.gpt.action.detailed], ['Actor', node.gpt.action.actor]);
  for (const [label, value] of fields) {
    if (value === null || value === undefined) continue;
    const dt = document.createElement('dt'); dt.textContent = label;
    const dd = document.createElement('dd'); dd.textContent = value;
    details.append(dt, dd);
  }
}
for (const node of data.nodes) {
  if (!rows[node.level]) {
    rows[node.level] = document.createElement('div');
    rows[node.level].className = 'row';
    treeBox.append(rows[node.level]);
  }
  const el = document.createElement('div');
  el.className = 'seg' + (node.gpt ? ' gpt' : '');
  el.style.left = (100 * node.start / total) + '%';
  el.style.width = (100 * (node.end - node.start) / total) + '%';
  el.textContent = (node.gpt && node.gpt.action.brief) || node.plm_action || '';
  el.title = fmt(node.start) + ' \\u2192 ' + fmt(node.end);
  el.addEventListener('click', () => show(node, el));
  rows[node.level].append(el);
}
</script></body></html>
"""


def script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` block (cannot close it)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def relative_link(target: str, page_dir: str) -> str:
    """A URL-encoded link from a page in ``page_dir`` to a file (URLs unchanged).

    Args:
        target: A local path, or a URL (``s3://``, ``https://`` ...).
        page_dir: The folder of the page that links.

    Returns:
        e.g. ``../../videos/a%23b.mp4`` for ``videos/a#b.mp4``.
    """
    target = target.removeprefix("file://")
    if "://" in target:
        return target
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))
    return urllib.parse.quote(rel.replace(os.sep, "/"))


def render_html(tree: SegmentTree, video_src: str | None) -> str:
    """A self-contained HTML viewer of one tree (player, clickable levels, fields).

    Args:
        tree: The tree (any stage; missing fields are left out).
        video_src: The video's URL, or a URL-encoded path relative to the page
            (:func:`relative_link`; None: no video).

    Returns:
        The page.
    """
    row = tree.to_release_row()
    title = (row["metadata"] or {}).get("title") or tree.video_uid
    data = {"video_uid": tree.video_uid, "title": title, "nodes": row["nodes"]}
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__VIDEO__", html.escape(video_src or "", quote=True))
        .replace("__DATA__", script_json(data))
    )


def render_timeline_png(tree: SegmentTree, width_in: float = 14.0) -> bytes:
    """The tree as a timeline: one row per level, segments labelled by their action."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The object API leaves the caller's pyplot backend alone (notebooks).
    depth = tree.max_depth() + 1
    fig = Figure(figsize=(width_in, 0.35 * depth + 1.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    total = max(tree.root.end, 1e-6)
    for node in tree.nodes:
        label = (node.gpt or {}).get("action", {}).get("brief") or node.plm_action or ""
        color = "#5b8fc7" if node.gpt else "#8fb3d9"
        ax.broken_barh(
            [(node.start, node.duration)],
            (node.level - 0.4, 0.8),
            facecolors=color,
            edgecolors="white",
            linewidth=0.5,
        )
        if label and node.duration / total > 0.04:
            ax.text(
                node.start + node.duration / 2,
                node.level,
                label[:40],
                ha="center",
                va="center",
                fontsize=6,
                clip_on=True,
            )
    ax.set_xlim(0, total)
    ax.set_ylim(depth - 0.5, -0.5)
    ax.set_xlabel("seconds")
    ax.set_ylabel("level")
    title = (tree.metadata or {}).get("title") or tree.video_uid
    ax.set_title(str(title)[:100], fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
