"""Stage 3 prompts: a template file, the metadata as YAML, the Tree-of-Captions in
Markdown, and a character budget that every part of the prompt obeys.

The template (``conf/base/prompts/stage3.yml`` by default) holds the texts; this
module fills them in. The context follows the published recipe: the video's
metadata with its whole transcript, the upper levels of the whole video's tree,
then the segment's own sub-tree. When a prompt is over ``prompt.max_chars``,
what goes first is, in order: the transcript lines farthest from the segment,
the deepest levels of the trees, and finally the length of the longest texts;
:class:`Prompt` records what was dropped.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from action100m.core.tree import Node, SegmentTree
from action100m.models.llm.schema import response_structure

if TYPE_CHECKING:
    from action100m.core.params import PromptParams

# Every field a template may use; the published recipe's spelling of the
# structure's name is accepted as well.
TEMPLATE_FIELDS = frozenset(
    {
        "response_structure",
        "response_strucutre",
        "video_metadata",
        "fence",
        "global_tree",
        "current_tree",
        "start_time",
        "end_time",
        "global_start_time",
        "global_end_time",
    }
)
TEMPLATE_PARTS = ("system", "user", "refine")
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class PromptTemplateError(ValueError):
    """A template file that is missing, malformed or uses an unknown field."""


class PromptBudgetError(ValueError):
    """A prompt that cannot fit its budget even with every optional part dropped."""


@dataclass(frozen=True)
class PromptTemplate:
    """The three texts of a Stage 3 conversation (see the template file)."""

    system: str
    user: str
    refine: str
    source: str = ""

    def hash(self) -> str:
        """A short hash of the texts and the answer structure (tracks versions)."""
        text = "\0".join([self.system, self.user, self.refine, response_structure()])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_template_path(path: str) -> Path:
    """``path`` as given, or relative to the project root (for runs started
    elsewhere, e.g. tests)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT_ROOT / candidate


def load_prompt_template(path: str) -> PromptTemplate:
    """Read and check a template file (YAML with ``system``, ``user``, ``refine``).

    Raises:
        PromptTemplateError: The file is missing or unreadable, a part is
            missing, or a part names a field that is not in ``TEMPLATE_FIELDS``.
    """
    resolved = resolve_template_path(path)
    try:
        data = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptTemplateError(f"prompt template {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PromptTemplateError(f"prompt template {path}: not a YAML mapping")
    problems = []
    for part in TEMPLATE_PARTS:
        text = data.get(part)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"'{part}' is missing or empty")
            continue
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        except ValueError as exc:
            problems.append(f"'{part}': {exc} (write {{{{ and }}}} for braces)")
            continue
        unknown = sorted(names - TEMPLATE_FIELDS)
        if unknown:
            problems.append(f"'{part}' uses unknown fields {unknown}")
    extra = sorted(set(data) - set(TEMPLATE_PARTS))
    if extra:
        problems.append(f"unknown parts {extra}")
    if problems:
        known = ", ".join(sorted(TEMPLATE_FIELDS))
        raise PromptTemplateError(
            f"prompt template {path}: {'; '.join(problems)} (fields: {known})"
        )
    return PromptTemplate(
        *(data[p].strip() for p in TEMPLATE_PARTS), source=str(resolved)
    )


@cache
def default_template() -> PromptTemplate:
    """The template that the default parameters point to."""
    from action100m.core.params import PromptParams

    return load_prompt_template(PromptParams().template)


def prompt_template_hash(template: PromptTemplate | None = None) -> str:
    """A short hash of the template texts (for tracking prompt versions)."""
    return (template or default_template()).hash()


def seconds(value: float) -> str:
    """``12.34`` (seconds, two decimals), the unit of every time in the prompt."""
    return f"{float(value):.2f}"


def format_span(node: Node) -> str:
    """``12.00s → 20.00s (duration: 8.0s)``."""
    start, end = seconds(node.start), seconds(node.end)
    return f"{start}s → {end}s (duration: {node.duration:.1f}s)"


def _cut(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[:limit].rstrip() + " [...]"
    return text


def _clean_text(text: str | None, limit: int | None) -> str | None:
    if text is None:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _cut("\n".join(line.rstrip() for line in lines).strip(), limit)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, everything else as usual."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def transcript_lines(metadata: dict[str, Any]) -> list[tuple[float, str]]:
    """``(time, words)`` of every transcript entry with a usable time."""
    lines = []
    for entry in metadata.get("transcript") or []:
        try:
            time = float(entry["time"])
        except (TypeError, ValueError, KeyError):
            continue
        if math.isfinite(time):
            lines.append((time, " ".join(str(entry.get("text", "")).split())))
    return lines


def render_metadata(
    metadata: dict[str, Any],
    lines: list[tuple[float, str]] | None = None,
    max_chars: int | None = 4000,
) -> str:
    """The video metadata as YAML (title, description, transcript).

    Args:
        metadata: The release ``metadata`` struct.
        lines: The transcript lines to show (None: all of them).
        max_chars: Longer titles, descriptions and transcript lines are cut.

    Returns:
        YAML text.
    """
    lines = transcript_lines(metadata) if lines is None else lines
    data = {
        "title": _clean_text(metadata.get("title"), max_chars),
        "description": _clean_text(metadata.get("description"), max_chars),
        "transcript": [
            f"({seconds(t)}s) {_cut(words, max_chars)}" for t, words in lines
        ],
    }
    return yaml.dump(
        data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=100
    )


def code_fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``.

    Whatever the text holds, it cannot close the fence and leave its block.
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_tree_markdown(
    tree: SegmentTree,
    node: Node,
    max_depth: int | None = None,
    kids: dict[str, list[Node]] | None = None,
    max_chars: int | None = None,
) -> str:
    """A node's sub-tree in Markdown, depth first.

    ``node`` is a ``##`` heading and its next two levels are numbered
    ``Segment 1``, ``Segment 1.2`` ... headings, each with ``start → end
    (duration)`` in seconds; deeper nodes show their time span in bold. Every
    node shows its clip caption; a leaf also shows its middle-frame caption,
    quoted line by line. A rule separates siblings of the top three levels.

    Args:
        tree: The tree.
        node: The sub-tree's root.
        max_depth: Levels below ``node`` to include (None: all).
        kids: ``tree.children()``, if already computed.
        max_chars: Longer captions are cut to this length.

    Returns:
        Markdown text.
    """
    kids = tree.children() if kids is None else kids
    parts: list[str] = []

    def visit(current: Node, depth: int, label: list[int]) -> None:
        span = format_span(current)
        if depth == 0:
            title = f"## {span}"
        elif depth <= 2:
            title = f"{'#' * (depth + 2)} Segment {'.'.join(map(str, label))} — {span}"
        else:
            title = f"**{span}**"
        if depth and label[-1] != 1 and depth < 3:
            parts.append("---\n")
        parts.append(f"{title}\n")
        caption = _cut((current.plm_caption or "").strip(), max_chars)
        if caption:
            parts.append(f"{caption}\n")
        children = kids.get(current.node_id, [])
        frame = _cut((current.llama3_caption or "").strip(), max_chars)
        if frame and not children:
            middle = seconds((current.start + current.end) / 2)
            quoted = "\n".join(f"> {line}".rstrip() for line in frame.splitlines())
            parts.append(f"*Middle-frame caption at {middle}s*:\n{quoted}\n")
        if max_depth is None or depth < max_depth:
            for index, child in enumerate(children, start=1):
                visit(child, depth + 1, [*label, index])

    visit(node, 0, [])
    return "\n".join(parts)


def subtree_height(node: Node, kids: dict[str, list[Node]]) -> int:
    """Levels below ``node`` (0 for a leaf)."""
    children = kids.get(node.node_id, [])
    return 1 + max((subtree_height(c, kids) for c in children), default=-1)


@dataclass
class Prompt:
    """A first-round conversation and what its budget dropped.

    ``context`` holds ``prompt_chars``; ``transcript_lines`` (shown) and
    ``transcript_lines_dropped``; ``subtree_levels``/``global_levels`` shown and
    ``subtree_levels_dropped``/``global_levels_dropped``; ``texts_cut_to_chars``
    (None when no text was shortened).
    """

    messages: list[dict[str, str]]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Choice:
    lines: int  # nearest transcript lines kept
    subtree: int  # levels of the segment's sub-tree below it
    global_: int  # levels of the whole video below its root
    text_limit: int | None


class PromptBuilder:
    """Builds the prompts of one video's segments within the character budget.

    Renderings shared by the video's segments (the whole-video tree) are made
    once per size.

    Args:
        tree: The video's tree with Stage 2 captions and its metadata.
        template: The prompt template.
        params: ``PromptParams`` (levels, transcript window, budget).
    """

    def __init__(
        self, tree: SegmentTree, template: PromptTemplate, params: PromptParams
    ) -> None:
        self.tree = tree
        self.template = template
        self.params = params
        self.kids = tree.children()
        self.lines = transcript_lines(tree.metadata)
        self.structure = response_structure()
        self._global: dict[tuple[int, int | None], str] = {}

    def _global_tree(self, levels: int, limit: int | None) -> str:
        key = (levels, limit)
        if key not in self._global:
            self._global[key] = render_tree_markdown(
                self.tree, self.tree.root, levels, self.kids, limit
            )
        return self._global[key]

    def _render(self, node: Node, lines: list, choice: _Choice) -> list[dict[str, str]]:
        metadata = render_metadata(
            self.tree.metadata,
            sorted(lines[: choice.lines]),
            4000 if choice.text_limit is None else min(4000, choice.text_limit),
        ).rstrip()
        root = self.tree.root
        values = {
            "response_structure": self.structure,
            "response_strucutre": self.structure,
            "video_metadata": metadata,
            "fence": code_fence(metadata),
            "global_tree": self._global_tree(choice.global_, choice.text_limit),
            "current_tree": render_tree_markdown(
                self.tree, node, choice.subtree, self.kids, choice.text_limit
            ),
            "start_time": seconds(node.start),
            "end_time": seconds(node.end),
            "global_start_time": seconds(root.start),
            "global_end_time": seconds(root.end),
        }
        return [
            {"role": "system", "content": self.template.system.format_map(values)},
            {"role": "user", "content": self.template.user.format_map(values)},
        ]

    def build(self, node: Node) -> Prompt:
        """The first-round conversation for ``node``, within ``max_chars``.

        Raises:
            PromptBudgetError: Not even the template with the segment's own
                caption fits the budget.
        """
        params, budget = self.params, self.params.max_chars
        margin = params.transcript_margin_s
        # Nearest first: the budget drops lines from the end of this list.
        lines = sorted(
            (
                line
                for line in self.lines
                if margin is None or node.start - margin <= line[0] <= node.end + margin
            ),
            key=lambda line: max(node.start - line[0], line[0] - node.end, 0.0),
        )
        height = subtree_height(node, self.kids)
        subtree = height if params.subtree_depth is None else params.subtree_depth
        subtree = min(subtree, height)
        global_ = min(
            params.global_levels - 1, subtree_height(self.tree.root, self.kids)
        )
        choice = _Choice(len(lines), subtree, global_, None)

        def size(c: _Choice) -> int:
            return sum(len(m["content"]) for m in self._render(node, lines, c))

        if budget is not None and size(choice) > budget:
            self._fit(choice, size, budget, node)
        messages = self._render(node, lines, choice)
        chars = sum(len(m["content"]) for m in messages)
        if budget is not None and chars > budget:
            raise PromptBudgetError(
                f"the prompt needs {chars} characters with no transcript, one level "
                f"of each tree and texts cut to {choice.text_limit} characters, over "
                f"prompt.max_chars={budget} (the template alone is "
                f"{len(self.template.system) + len(self.template.user)})"
            )
        return Prompt(
            messages,
            {
                "prompt_chars": chars,
                "transcript_lines": choice.lines,
                "transcript_lines_dropped": len(lines) - choice.lines,
                "subtree_levels": choice.subtree,
                "subtree_levels_dropped": subtree - choice.subtree,
                "global_levels": choice.global_ + 1,
                "global_levels_dropped": global_ - choice.global_,
                "texts_cut_to_chars": choice.text_limit,
            },
        )

    def _fit(self, choice: _Choice, size, budget: int, node: Node) -> None:
        """Shrink ``choice`` in place until ``size(choice) <= budget``."""

        def largest(attribute: str, low: int, high: int) -> bool:
            """Set ``attribute`` to the largest value in [low, high] that fits;
            False (and ``low``) when not even ``low`` fits."""
            setattr(choice, attribute, low)
            if size(choice) > budget:
                return False
            while low < high:
                middle = (low + high + 1) // 2
                setattr(choice, attribute, middle)
                if size(choice) <= budget:
                    low = middle
                else:
                    high = middle - 1
            setattr(choice, attribute, low)
            return True

        # 1. The transcript lines farthest from the segment.
        if largest("lines", 0, choice.lines):
            return
        # 2. The deepest level shown, of either tree (the segment's on a tie:
        # the whole-video tree is shared by the video's prompts).
        while size(choice) > budget and (choice.subtree or choice.global_):
            if choice.subtree and node.level + choice.subtree >= choice.global_:
                choice.subtree -= 1
            else:
                choice.global_ -= 1
        if size(choice) <= budget:
            return
        # 3. The longest texts (captions, title, description, transcript lines).
        largest("text_limit", 16, 4000)


def build_messages(
    tree: SegmentTree,
    node: Node,
    template: PromptTemplate | None = None,
    params: PromptParams | None = None,
) -> list[dict[str, str]]:
    """The first-round conversation for one segment (see :class:`PromptBuilder`)."""
    from action100m.core.params import PromptParams

    builder = PromptBuilder(
        tree, template or default_template(), params or PromptParams()
    )
    return builder.build(node).messages


def refine_messages(
    conversation: list[dict[str, str]],
    previous_answer: str,
    template: PromptTemplate | None = None,
) -> list[dict[str, str]]:
    """The next Self-Refine round: the draft as the assistant turn, then a check."""
    return [
        *conversation,
        {"role": "assistant", "content": previous_answer},
        {"role": "user", "content": (template or default_template()).refine},
    ]
