"""The run's index page: every video, every failure and the summary metrics.

``<output_dir>/index.html`` is one self-contained page (no network, no files
beside it but the ones it links). It sits above ``viewer/`` so that no video's
page can take its name (a video called ``index`` has ``viewer/index.html``).
Its tables sort by any column (click a heading, again to reverse;
``index.html#sort=duration`` or ``#sort=-nodes`` opens sorted), and, like the
per-video viewer, it inserts every text as text.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterable
from typing import Any

from action100m.release.viewer import script_json

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1rem;max-width:1400px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f3f3f3;user-select:none;white-space:nowrap}
th[data-dir="asc"]::after{content:" \\u25b2"}th[data-dir="desc"]::after{content:" \\u25bc"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
#metrics td:first-child{font-family:monospace}
</style></head><body>
<h1>__TITLE__</h1>
<p id="counts"></p>
<h2>Videos</h2>
<table id="videos"><thead><tr>
<th data-key="title">title</th><th data-key="video_uid">video</th>
<th data-key="duration" data-num>duration (s)</th><th data-key="nodes" data-num>nodes</th>
<th data-key="annotated" data-num>annotated nodes</th><th>viewer</th><th>timeline</th>
</tr></thead><tbody></tbody></table>
<h2>Failures (errors.jsonl)</h2>
<table id="errors"><thead><tr>
<th data-key="video_uid">video</th><th data-key="stage">stage</th>
<th data-key="node_id">node</th><th data-key="field">field</th><th data-key="reason">reason</th>
</tr></thead><tbody></tbody></table>
<h2>Summary metrics (run_summary.json)</h2>
<table id="metrics"><thead><tr>
<th data-key="name">metric</th><th data-key="value" data-num>value</th>
</tr></thead><tbody></tbody></table>
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
function cell(row, text, num) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (num) td.className = 'num';
  row.append(td);
}
function link(row, href, label) {
  const td = document.createElement('td');
  const a = document.createElement('a');
  a.href = href; a.textContent = label;
  td.append(a); row.append(td);
}
const builders = {
  videos: v => { const r = document.createElement('tr');
    cell(r, v.title); cell(r, v.video_uid); cell(r, v.duration.toFixed(1), true);
    cell(r, v.nodes, true); cell(r, v.annotated, true);
    link(r, v.viewer, 'viewer'); link(r, v.timeline, 'timeline'); return r; },
  errors: e => { const r = document.createElement('tr');
    for (const k of ['video_uid', 'stage', 'node_id', 'field', 'reason']) cell(r, e[k]);
    return r; },
  metrics: m => { const r = document.createElement('tr');
    cell(r, m.name); cell(r, typeof m.value === 'number' ? +m.value.toPrecision(6) : m.value, true);
    return r; },
};
function fill(id, rows) {
  document.querySelector('#' + id + ' tbody').replaceChildren(...rows.map(builders[id]));
}
function sortBy(id, key, dir) {
  const table = document.getElementById(id);
  const th = table.querySelector('th[data-key="' + key + '"]');
  if (!th) return;
  const num = th.hasAttribute('data-num');
  const sign = dir === 'desc' ? -1 : 1;
  data[id].sort((a, b) => {
    let x = a[key], y = b[key];
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (num) return sign * (Number(x) - Number(y));
    return sign * String(x).localeCompare(String(y));
  });
  table.querySelectorAll('th').forEach(h => h.removeAttribute('data-dir'));
  th.dataset.dir = dir;
  fill(id, data[id]);
}
for (const id of Object.keys(builders)) {
  fill(id, data[id]);
  document.querySelectorAll('#' + id + ' th[data-key]').forEach(th => th.addEventListener('click',
    () => sortBy(id, th.dataset.key, th.dataset.dir === 'asc' ? 'desc' : 'asc')));
}
document.getElementById('counts').textContent = data.videos.length + ' videos, ' +
  data.errors.length + ' failures';
const wanted = /^#sort=(-?)(\\w+)$/.exec(location.hash);
if (wanted) sortBy('videos', wanted[2], wanted[1] ? 'desc' : 'asc');
</script></body></html>
"""


def video_entry(row: dict[str, Any], duration: float) -> dict[str, Any]:
    """One index row from a release row (title, duration, node counts, links).

    Args:
        row: The video's release row (``video_uid``, ``metadata``, ``nodes``).
        duration: The video's duration in seconds.

    Returns:
        The entry, with URL-encoded links relative to ``<output_dir>``.
    """
    uid = row["video_uid"]
    nodes = row["nodes"] or []
    quoted = urllib.parse.quote(uid, safe="")
    return {
        "video_uid": uid,
        "title": (row["metadata"] or {}).get("title") or uid,
        "duration": float(duration),
        "nodes": len(nodes),
        "annotated": sum(n.get("gpt") is not None for n in nodes),
        "viewer": f"viewer/{quoted}.html",
        "timeline": f"timelines/{quoted}.png",
    }


def render_run_index(
    videos: Iterable[dict[str, Any]],
    errors: list[dict[str, Any]],
    metrics: dict[str, Any],
    title: str = "Action100M run",
) -> str:
    """The index page of a run.

    Args:
        videos: Entries from :func:`video_entry`.
        errors: The run's error records (``errors.jsonl``).
        metrics: The run's summary metrics (``run_summary.json``).
        title: The page's heading.

    Returns:
        The page.
    """
    data = {
        "videos": list(videos),
        "errors": [
            {k: e.get(k) for k in ("video_uid", "stage", "node_id", "field", "reason")}
            for e in errors
        ],
        "metrics": [
            {"name": name, "value": value}
            for name, value in sorted(metrics.items())
            if isinstance(value, int | float | str) and not isinstance(value, bool)
        ],
    }
    return _PAGE.replace("__TITLE__", html.escape(title)).replace(
        "__DATA__", script_json(data)
    )
