"""The segment tree: one type that owns the Tree-of-Captions invariants.

Every stage reads and writes :class:`SegmentTree`. It is built from a merge tree
(Stage 1), converted to and from rows of the release parquet, and checked against
the invariants seen in every released tree (:meth:`SegmentTree.violations`).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from action100m.core.schema import METADATA_FIELDS

# Namespace of the deterministic node ids: uuid5(NODE_NAMESPACE, "uid|start|end").
NODE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "action100m/segment-node")
MIN_LEAF_S = 0.5
GPT_MIN_S = 4.0
# Float32 start/end values read back from parquet are compared with this slack.
TIME_TOLERANCE_S = 1e-3
# Fields that the later stages fill in.
UPDATABLE_FIELDS = ("plm_action", "plm_caption", "llama3_caption", "gpt")


def make_node_id(video_uid: str, start: float, end: float) -> str:
    """A UUIDv5 of (video_uid, start, end): stable across reruns."""
    key = f"{video_uid}|{float(np.float32(start)):.4f}|{float(np.float32(end)):.4f}"
    return str(uuid.uuid5(NODE_NAMESPACE, key))


@dataclass
class Node:
    """One temporal segment of a video, with the release's per-node fields."""

    node_id: str
    parent_id: str | None
    level: int
    start: float
    end: float
    plm_action: str | None = None
    plm_caption: str | None = None
    llama3_caption: str | None = None
    gpt: dict[str, Any] | None = None

    @property
    def duration(self) -> float:
        return float(self.end) - float(self.start)


@dataclass
class SegmentTree:
    """A video's Tree-of-Captions: nodes in breadth-first order, root first.

    Attributes:
        video_uid: The video's id (its file stem).
        nodes: All nodes, breadth-first, children left to right.
        metadata: The release ``metadata`` struct (title, transcript, ...).
        linkage: The scipy-style linkage matrix of the merge tree it came from
            (``(n-1, 4)``: child a, child b, distance, size), if any.
        frame_times: Timestamps (s) of the sampled frames behind ``linkage``.
    """

    video_uid: str
    nodes: list[Node]
    metadata: dict[str, Any] = field(default_factory=dict)
    linkage: np.ndarray | None = None
    frame_times: np.ndarray | None = None

    # ----------------------------------------------------------------- structure
    @property
    def root(self) -> Node:
        return self.nodes[0]

    def children(self) -> dict[str, list[Node]]:
        """Children of every node id, ordered by start time."""
        kids: dict[str, list[Node]] = {}
        for node in self.nodes:
            if node.parent_id is not None:
                kids.setdefault(node.parent_id, []).append(node)
        for group in kids.values():
            group.sort(key=lambda n: n.start)
        return kids

    def leaves(self) -> list[Node]:
        kids = self.children()
        return [n for n in self.nodes if n.node_id not in kids]

    def max_depth(self) -> int:
        return max(n.level for n in self.nodes)

    # ------------------------------------------------------------- construction
    @classmethod
    def from_merge_tree(
        cls,
        video_uid: str,
        linkage: np.ndarray,
        frame_times: np.ndarray,
        duration: float,
        min_segment_s: float = MIN_LEAF_S,
        time_decimals: int | None = 2,
        metadata: dict[str, Any] | None = None,
    ) -> SegmentTree:
        """Turn an agglomerative merge tree over sampled frames into segments.

        A cluster of frames ``lo..hi`` spans from the midpoint between frames
        ``lo-1`` and ``lo`` to the midpoint between ``hi`` and ``hi+1``; the first
        and last boundaries snap to 0 and the video end. A node is split only if
        both children last at least ``min_segment_s``; otherwise it is a leaf.

        Args:
            video_uid: The video's id.
            linkage: scipy-style ``(n-1, 4)`` merges of contiguous clusters.
            frame_times: Timestamps (s) of the ``n`` sampled frames, increasing.
            duration: The video's duration (s).
            min_segment_s: Minimum duration of both children for a split.
            time_decimals: Round boundaries to this many decimals (None: no rounding).
            metadata: The release ``metadata`` struct.

        Returns:
            The tree, nodes breadth-first.
        """
        times = np.asarray(frame_times, dtype=np.float64)
        n = len(times)
        if n == 0:
            raise ValueError("no sampled frames to segment")
        end_time = max(float(duration), float(times[-1]))
        bounds = np.empty(n + 1)
        bounds[0] = 0.0
        bounds[1:n] = (times[:-1] + times[1:]) / 2.0
        bounds[n] = end_time
        if time_decimals is not None:
            bounds = np.round(bounds, time_decimals)
        # Store as float32 (the release's type) so shared boundaries stay equal.
        bounds = bounds.astype(np.float32).astype(np.float64)

        link = np.asarray(linkage, dtype=np.float64).reshape(-1, 4)
        if len(link) != n - 1:
            raise ValueError(f"linkage has {len(link)} merges for {n} frames")
        lo = np.empty(2 * n - 1, dtype=np.int64)
        hi = np.empty(2 * n - 1, dtype=np.int64)
        lo[:n] = hi[:n] = np.arange(n)
        left = np.empty(n - 1, dtype=np.int64)
        right = np.empty(n - 1, dtype=np.int64)
        for i, (first, second) in enumerate(link[:, :2].astype(np.int64)):
            a, b = (first, second) if lo[first] <= lo[second] else (second, first)
            if hi[a] + 1 != lo[b]:
                raise ValueError(f"merge {i} joins non-adjacent frame ranges")
            left[i], right[i] = a, b
            lo[n + i], hi[n + i] = lo[a], hi[b]

        def span(cluster: int) -> tuple[float, float]:
            return float(bounds[lo[cluster]]), float(bounds[hi[cluster] + 1])

        root_cluster = 2 * n - 2
        start, end = span(root_cluster)
        root = Node(make_node_id(video_uid, start, end), None, 0, start, end)
        nodes = [root]
        queue = deque([(root_cluster, root)])
        while queue:
            cluster, node = queue.popleft()
            if cluster < n:
                continue
            pair = (left[cluster - n], right[cluster - n])
            spans = [span(c) for c in pair]
            if min(e - s for s, e in spans) < min_segment_s - 1e-9:
                continue
            for child, (s, e) in zip(pair, spans, strict=True):
                kid = Node(
                    make_node_id(video_uid, s, e), node.node_id, node.level + 1, s, e
                )
                nodes.append(kid)
                queue.append((child, kid))
        return cls(
            video_uid,
            nodes,
            metadata=dict(metadata or {}),
            linkage=link,
            frame_times=times,
        )

    # ---------------------------------------------------------------- invariants
    def violations(
        self,
        require_captions: bool = True,
        strict: bool = False,
        require_gpt: bool = True,
        min_leaf_s: float = MIN_LEAF_S,
    ) -> list[str]:
        """Every way this tree breaks the release invariants (empty if none).

        Args:
            require_captions: Also require the Stage 2/3 fields where the release
                always has them (``llama3_caption`` on leaves, ``gpt`` on internal
                nodes of at least 4 s). Misplaced fields are violations either way.
            strict: Also require ``plm_caption`` on every node. The released trees
                miss it on about 1 node in 1,000 (captioning failures), so real
                release files are only valid without it.
            require_gpt: With ``require_captions``, also require ``gpt`` where the
                release has it (off for trees before Stage 3).
            min_leaf_s: The shortest leaf allowed (the release: 0.5 s; a tree
                built with another ``min_segment_s`` is checked against that).

        Returns:
            One readable message per violation.
        """
        uid = self.video_uid
        if not self.nodes:
            return [f"{uid}: tree has no nodes"]
        problems: list[str] = []
        by_id: dict[str, Node] = {}
        for node in self.nodes:
            if node.node_id in by_id:
                problems.append(f"{uid}: duplicate node_id {node.node_id}")
            by_id[node.node_id] = node
        roots = [n for n in self.nodes if n.parent_id is None]
        if len(roots) != 1:
            problems.append(f"{uid}: {len(roots)} roots (parent_id null), expected 1")
        if self.nodes[0].parent_id is not None or self.nodes[0].level != 0:
            problems.append(f"{uid}: first node is not a level-0 root")
        if abs(self.nodes[0].start) > TIME_TOLERANCE_S:
            problems.append(f"{uid}: root starts at {self.nodes[0].start}, not 0")
        kids = self.children()
        for node in self.nodes:
            label = f"{uid}: node {node.node_id} [{node.start:.3f}, {node.end:.3f}]"
            if not node.end > node.start:
                problems.append(f"{label} ends before it starts")
            if node.parent_id is not None:
                parent = by_id.get(node.parent_id)
                if parent is None:
                    problems.append(f"{label} has unknown parent {node.parent_id}")
                elif node.level != parent.level + 1:
                    problems.append(
                        f"{label} has level {node.level}, parent level {parent.level}"
                    )
            elif node.level != 0:
                problems.append(f"{label} is a root with level {node.level}")
            children = kids.get(node.node_id, [])
            if children:
                problems += self._partition_problems(label, node, children)
            elif node.duration < min_leaf_s - TIME_TOLERANCE_S:
                problems.append(f"{label} is a leaf shorter than {min_leaf_s} s")
            problems += self._field_problems(
                label, node, bool(children), require_captions, strict, require_gpt
            )
        if not problems:
            problems += self._order_problems(kids)
        return problems

    @staticmethod
    def _partition_problems(label: str, node: Node, children: list[Node]) -> list[str]:
        if len(children) != 2:
            return [f"{label} has {len(children)} children, expected 2"]
        first, second = children
        ok = (
            abs(first.start - node.start) <= TIME_TOLERANCE_S
            and abs(first.end - second.start) <= TIME_TOLERANCE_S
            and abs(second.end - node.end) <= TIME_TOLERANCE_S
        )
        if ok:
            return []
        return [
            f"{label}: children [{first.start:.3f}, {first.end:.3f}] and "
            f"[{second.start:.3f}, {second.end:.3f}] do not partition it"
        ]

    @staticmethod
    def _field_problems(
        label: str,
        node: Node,
        internal: bool,
        require_captions: bool,
        strict: bool,
        require_gpt: bool,
    ) -> list[str]:
        problems = []
        wants_gpt = internal and node.duration >= GPT_MIN_S - TIME_TOLERANCE_S
        if internal and node.llama3_caption is not None:
            problems.append(f"{label} is internal but has a llama3_caption")
        if node.gpt is not None and not wants_gpt:
            problems.append(f"{label} has gpt but is a leaf or shorter than 4 s")
        if require_captions and strict and node.plm_caption is None:
            problems.append(f"{label} has no plm_caption")
        if require_captions:
            if not internal and node.llama3_caption is None:
                problems.append(f"{label} is a leaf without llama3_caption")
            if require_gpt and wants_gpt and node.gpt is None:
                problems.append(f"{label} is internal and >= 4 s but has no gpt")
        return problems

    def _order_problems(self, kids: dict[str, list[Node]]) -> list[str]:
        expected = [n.node_id for n in self.iter_breadth_first(kids)]
        if expected != [n.node_id for n in self.nodes]:
            return [f"{self.video_uid}: nodes are not in breadth-first order"]
        return []

    def iter_breadth_first(
        self, kids: dict[str, list[Node]] | None = None
    ) -> Iterator[Node]:
        """Nodes breadth-first from the root, children by start time."""
        kids = self.children() if kids is None else kids
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            yield node
            queue.extend(kids.get(node.node_id, []))

    def update_nodes(self, fields: dict[str, dict[str, Any]]) -> None:
        """Set per-node fields (e.g. captions) given as ``node_id -> {field: value}``.

        Raises:
            KeyError: A node id or field name that this tree does not have.
        """
        by_id = {n.node_id: n for n in self.nodes}
        for node_id, values in fields.items():
            node = by_id[node_id]
            for name, value in values.items():
                if name not in UPDATABLE_FIELDS:
                    raise KeyError(f"{name!r} is not a caption or gpt field")
                setattr(node, name, value)

    # ------------------------------------------------------------ serialisation
    def to_release_row(self) -> dict[str, Any]:
        """This tree as one row of the release parquet (a plain dict)."""
        meta = {name: self.metadata.get(name) for name in METADATA_FIELDS}
        nodes = []
        for node in self.nodes:
            row = asdict(node)
            row["start"] = float(np.float32(node.start))
            row["end"] = float(np.float32(node.end))
            nodes.append(row)
        return {"video_uid": self.video_uid, "metadata": meta, "nodes": nodes}

    @classmethod
    def from_release_row(cls, row: dict[str, Any]) -> SegmentTree:
        """Read one release-parquet row (as given by ``Table.to_pylist``)."""
        nodes = [Node(**node) for node in row["nodes"] or []]
        return cls(row["video_uid"], nodes, metadata=dict(row.get("metadata") or {}))

    def to_release_json(self) -> dict[str, list[Any]]:
        """The per-video JSON of the release: each column as a one-item list."""
        return {key: [value] for key, value in self.to_release_row().items()}

    @classmethod
    def from_release_json(cls, data: dict[str, list[Any]]) -> SegmentTree:
        """Inverse of :meth:`to_release_json`."""
        return cls.from_release_row({key: value[0] for key, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the release row plus the merge tree behind it."""
        data = self.to_release_row()
        if self.linkage is not None:
            data["linkage"] = np.asarray(self.linkage).tolist()
        if self.frame_times is not None:
            data["frame_times"] = np.asarray(self.frame_times).tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentTree:
        """Inverse of :meth:`to_dict`."""
        tree = cls.from_release_row(data)
        if data.get("linkage") is not None:
            tree.linkage = np.asarray(data["linkage"], dtype=np.float64).reshape(-1, 4)
        if data.get("frame_times") is not None:
            tree.frame_times = np.asarray(data["frame_times"], dtype=np.float64)
        return tree
