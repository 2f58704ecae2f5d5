"""The run's index: a summary page and paged listings of videos and failures.

``<output_dir>/index.html`` is the summary: counts, the failures (the first
page of them, then links to the rest), one link per page of videos and the
summary metrics. ``<output_dir>/index/videos-00001.html`` and on list
``PAGE_SIZE`` videos each (videos with failed nodes first), and
``index/failures-00001.html`` and on the failures beyond the summary's, so no
page grows with the run: at 10^6 videos the summary holds a thousand links and
each listing a thousand rows. The summary sits above ``viewer/`` so that no
video's page can take its name (a video called ``index`` has
``viewer/index.html``).

Every page is self-contained (no network, no files beside it but the ones it
links); its tables sort by any column (click a heading, again to reverse;
``videos-00001.html#sort=-duration`` or ``#sort=-nodes`` opens sorted), and,
like the per-video viewer, it inserts every text as text.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from action100m.release.viewer import script_json

PAGE_SIZE = 1000  # rows per listing page
PAGES_FOLDER = "index"  # the listings' folder, beside index.html
ERROR_KEYS = ("video_uid", "stage", "node_id", "field", "reason")

_TABLES = {
    "videos": (
        '<th data-key="title">title</th><th data-key="video_uid">video</th>'
        '<th data-key="duration" data-num>duration (s)</th>'
        '<th data-key="nodes" data-num>nodes</th>'
        '<th data-key="annotated" data-num>annotated nodes</th>'
        '<th data-key="failed" data-num>failed nodes</th>'
        "<th>viewer</th><th>timeline</th>"
    ),
    "errors": (
        '<th data-key="video_uid">video</th><th data-key="stage">stage</th>'
        '<th data-key="node_id">node</th><th data-key="field">field</th>'
        '<th data-key="reason">reason</th>'
    ),
    "metrics": '<th data-key="name">metric</th><th data-key="value" data-num>value</th>',
}

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
nav a{margin-right:.8rem}
</style></head><body>
<h1>__TITLE__</h1>
<p id="counts"></p>
__BODY__
<script id="data" type="application/json">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
function cell(row, text, num) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '' : String(text);
  if (num) td.className = 'num';
  row.append(td);
}
function link(parent, href, label) {
  const a = document.createElement('a');
  a.href = href; a.textContent = label; parent.append(a);
}
function linkCell(row, href, label) {
  const td = document.createElement('td'); link(td, href, label); row.append(td);
}
const builders = {
  videos: v => { const r = document.createElement('tr');
    cell(r, v.title); cell(r, v.video_uid); cell(r, v.duration.toFixed(1), true);
    cell(r, v.nodes, true); cell(r, v.annotated, true); cell(r, v.failed, true);
    linkCell(r, v.viewer, 'viewer'); linkCell(r, v.timeline, 'timeline'); return r; },
  errors: e => { const r = document.createElement('tr');
    for (const k of ['video_uid', 'stage', 'node_id', 'field', 'reason']) cell(r, e[k]);
    return r; },
  metrics: m => { const r = document.createElement('tr');
    cell(r, m.name); cell(r, typeof m.value === 'number' ? +m.value.toPrecision(6) : m.value, true);
    return r; },
};
const tables = Object.keys(builders).filter(id => id in data);
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
for (const id of tables) {
  fill(id, data[id]);
  document.querySelectorAll('#' + id + ' th[data-key]').forEach(th => th.addEventListener('click',
    () => sortBy(id, th.dataset.key, th.dataset.dir === 'asc' ? 'desc' : 'asc')));
}
for (const nav of document.querySelectorAll('nav[data-links]')) {
  for (const [href, label] of data[nav.dataset.links]) link(nav, href, label);
}
document.getElementById('counts').textContent = data.counts;
const wanted = /^#sort=(-?)(\\w+)$/.exec(location.hash);
if (wanted) sortBy(tables[0], wanted[2], wanted[1] ? 'desc' : 'asc');
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


def page_name(kind: str, number: int) -> str:
    """The file stem of listing page ``number`` (from 1) of ``videos`` or ``errors``."""
    return f"{'failures' if kind == 'errors' else kind}-{number:05d}"


def _table(kind: str, heading: str) -> str:
    return (
        f'<h2>{heading}</h2>\n<table id="{kind}"><thead><tr>{_TABLES[kind]}'
        "</tr></thead><tbody></tbody></table>"
    )


def _page(title: str, body: str, data: dict[str, Any]) -> str:
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__BODY__", body)
        .replace("__DATA__", script_json(data))
    )


def _pages(count: int, page_size: int) -> range:
    return range(1, (count + page_size - 1) // page_size + 1)


class RunIndex:
    """The index of one run, filled one video at a time, rendered page by page.

    Entries are kept as compact tuples (a few hundred bytes per video), and each
    listing page is rendered only when asked for, so at no time does more than
    one page of HTML sit in memory.

    Args:
        errors: The run's error records (``errors.jsonl``).
        metrics: The run's summary metrics (``run_summary.json``).
        title: The pages' heading.
        page_size: Rows per listing page.
    """

    def __init__(
        self,
        errors: list[dict[str, Any]],
        metrics: dict[str, Any],
        title: str = "Action100M run",
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.errors = [{k: e.get(k) for k in ERROR_KEYS} for e in errors]
        self.metrics = metrics
        self.title = title
        self.page_size = max(1, page_size)
        self.failed_nodes: dict[str, int] = {}
        for error in self.errors:
            if error["node_id"] is not None:
                uid = error["video_uid"]
                self.failed_nodes[uid] = self.failed_nodes.get(uid, 0) + 1
        self._failing: list[tuple] = []
        self._others: list[tuple] = []

    def add(self, entry: dict[str, Any]) -> None:
        """Add a video (an entry from :func:`video_entry`)."""
        failed = self.failed_nodes.get(entry["video_uid"], 0)
        compact = (
            entry["video_uid"],
            entry["title"],
            entry["duration"],
            entry["nodes"],
            entry["annotated"],
            failed,
        )
        (self._failing if failed else self._others).append(compact)

    @property
    def videos(self) -> int:
        return len(self._failing) + len(self._others)

    def _video_rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        rows = []
        for index in range(start, min(stop, self.videos)):
            split = len(self._failing)
            uid, title, duration, nodes, annotated, failed = (
                self._failing[index] if index < split else self._others[index - split]
            )
            quoted = urllib.parse.quote(uid, safe="")
            rows.append(
                {
                    "video_uid": uid,
                    "title": title,
                    "duration": duration,
                    "nodes": nodes,
                    "annotated": annotated,
                    "failed": failed,
                    "viewer": f"../viewer/{quoted}.html",
                    "timeline": f"../timelines/{quoted}.png",
                }
            )
        return rows

    def _links(self, kind: str, count: int, prefix: str) -> list[list[str]]:
        return [
            [
                f"{prefix}{page_name(kind, n)}.html",
                f"{(n - 1) * self.page_size + 1}-{min(n * self.page_size, count)}",
            ]
            for n in _pages(count, self.page_size)
        ]

    def summary_page(self) -> str:
        """``index.html``: counts, the first failures, page links, metrics."""
        shown = self.errors[: self.page_size]
        more = self._links("errors", len(self.errors), f"{PAGES_FOLDER}/")[1:]
        data = {
            "counts": f"{self.videos} videos, {len(self.errors)} failures",
            "errors": shown,
            "error_pages": more,
            "video_pages": self._links("videos", self.videos, f"{PAGES_FOLDER}/"),
            "metrics": [
                {"name": name, "value": value}
                for name, value in sorted(self.metrics.items())
                if isinstance(value, int | float | str) and not isinstance(value, bool)
            ],
        }
        body = "\n".join(
            (
                _table("errors", "Failures (errors.jsonl)"),
                '<nav data-links="error_pages"></nav>',
                f"<h2>Videos, {self.page_size} a page (failed nodes first)</h2>",
                '<nav data-links="video_pages"></nav>',
                _table("metrics", "Summary metrics (run_summary.json)"),
            )
        )
        return _page(self.title, body, data)

    def listing_page(self, kind: str, number: int) -> str:
        """Listing page ``number`` (from 1) of ``videos`` or ``errors``."""
        start, stop = (number - 1) * self.page_size, number * self.page_size
        total = self.videos if kind == "videos" else len(self.errors)
        rows = (
            self._video_rows(start, stop)
            if kind == "videos"
            else self.errors[start:stop]
        )
        last = _pages(total, self.page_size)[-1] if total else 1
        nav = [["../index.html", "summary"]]
        if number > (1 if kind == "videos" else 2):  # failures' page 1: the summary
            nav.append([f"{page_name(kind, number - 1)}.html", "previous"])
        if number < last:
            nav.append([f"{page_name(kind, number + 1)}.html", "next"])
        what = "videos" if kind == "videos" else "failures"
        data = {
            "counts": f"{what} {start + 1}-{start + len(rows)} of {total}",
            kind: rows,
            "nav": nav,
        }
        heading = "Videos" if kind == "videos" else "Failures (errors.jsonl)"
        body = '<nav data-links="nav"></nav>\n' + _table(kind, heading)
        return _page(f"{self.title}: {what} page {number}", body, data)

    def listing_pages(self) -> dict[str, Callable[[], str]]:
        """``page name -> callable`` rendering each listing page when saved."""
        pages: dict[str, Callable[[], str]] = {}
        for kind, count in (("videos", self.videos), ("errors", len(self.errors))):
            first = 1 if kind == "videos" else 2  # the summary shows page 1
            for number in _pages(count, self.page_size)[first - 1 :]:
                pages[page_name(kind, number)] = lambda kind=kind, number=number: (
                    self.listing_page(kind, number)
                )
        return pages


def render_run_index(
    videos: Iterable[dict[str, Any]],
    errors: list[dict[str, Any]],
    metrics: dict[str, Any],
    title: str = "Action100M run",
    page_size: int = PAGE_SIZE,
) -> tuple[str, dict[str, Callable[[], str]]]:
    """The index of a run: the summary page and its listing pages.

    Args:
        videos: Entries from :func:`video_entry`.
        errors: The run's error records (``errors.jsonl``).
        metrics: The run's summary metrics (``run_summary.json``).
        title: The pages' heading.
        page_size: Rows per listing page.

    Returns:
        ``index.html`` and ``page name -> callable`` of the pages of ``index/``.
    """
    index = RunIndex(errors, metrics, title, page_size)
    for entry in videos:
        index.add(entry)
    return index.summary_page(), index.listing_pages()
