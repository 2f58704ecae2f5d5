"""The dataset cards (``README.md``) of the FiftyOne export and of the release shards.

Both follow the layout of the Action100M FiftyOne card: YAML front matter
(licence, tags, size category, a summary with the loading snippet), then a
description, the fields, how the annotations were made (this run's models and
revisions) and this run's statistics next to the paper's. The release card's
front matter also names the shards (``configs``), so
``datasets.load_dataset(<output_dir>)`` reads the run's ``data/*.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from action100m.core.params import DatasetCardParams
from action100m.core.schema import METADATA, NODE
from action100m.release.fiftyone_format import (
    METADATA_SAMPLE_FIELDS,
    TRANSCRIPT_SEGMENTS,
)
from action100m.release.shards import SHARD_GLOB, ReleaseSource
from action100m.release.stats import compute_stats
from action100m.runtime.run_record import RUN_CONFIG_FILE
from action100m.runtime.tracking import model_identities

# The paper's corpus (Action100M): source videos and annotated segments.
PAPER_VIDEOS = 1_199_096
PAPER_SEGMENTS = 147_000_000
# Hugging Face size categories: (upper bound, name).
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)
FIELD_NOTES = {
    "title": "the video's title",
    "description": "the video's description",
    "full_video_url": "YouTube watch URL formed from the `video_uid` (null when "
    "the uid is not an 11-character YouTube id)",
    "upload_date": "upload date (from `YYYYMMDD` or an ISO date)",
    "view_count": "views when the metadata was collected",
    "like_count": "likes when the metadata was collected",
    "full_video_duration": "duration of the whole source video, seconds",
    "transcript": "the ASR transcript entries' text, joined by spaces",
    "tree_depth": "deepest level of the video's Tree-of-Captions (root = 0)",
}
GPT_NOTES = {
    "gpt_summary_brief": "one-sentence caption of the segment",
    "gpt_summary_detailed": "dense, chronological description of the segment",
    "gpt_action_brief": 'short verb phrase naming the action ("N/A" segments '
    "are left out)",
    "gpt_action_detailed": "one imperative sentence on how the action is done",
    "gpt_action_actor": "noun phrase for who or what performs the action",
}
CITATION = """@article{chen2026action100m,
  title={Action100M: A Large-scale Video Action Dataset},
  author={Chen, Delong and Kasarla, Tejaswi and Bang, Yejin and Shukor, Mustafa and Chung, Willy and Yu, Jade and Bolourchi, Allen and Moutakanni, Th{\\'e}o and Fung, Pascale},
  journal={arXiv preprint arXiv:2601.10592},
  year={2026}
}"""  # noqa: E501


@dataclass(frozen=True)
class StageModel:
    """One model of the run, as the card lists it."""

    stage: str
    role: str
    model: str
    revision: str


def size_category(count: int) -> str:
    """The Hugging Face size category of ``count`` samples."""
    for bound, name in SIZE_CATEGORIES:
        if count < bound:
            return name
    return "n>10M"


def run_models(params: dict[str, Any]) -> list[StageModel]:
    """The models a run's parameters name, with their resolved revisions.

    Args:
        params: ``segmentation``, ``captioning`` and ``aggregation`` parameters
            as plain dicts.

    Returns:
        One entry per model role, in stage order.
    """
    found = model_identities(params)
    embedder = params["segmentation"]["embedder"]
    captioning, llm = params["captioning"], params["aggregation"]["llm"]

    def model(role: str) -> tuple[str, str]:
        return (
            found.get(f"model.{role}.id") or "-",
            found.get(f"model.{role}.revision") or "-",
        )

    if embedder["backend"] == "vjepa2":
        stage1 = StageModel(
            "1 segmentation", "frame embeddings (V-JEPA 2)", *model("embedder")
        )
    else:
        stage1 = StageModel(
            "1 segmentation", f"frame embeddings ({embedder['backend']})", "-", "-"
        )
    plm = captioning["plm"]
    return [
        stage1,
        StageModel(
            "2 captioning",
            f"`plm_caption`, `plm_action` ({plm['num_frames']} frames at "
            f"{plm['frame_size']} px, every node)",
            *model("plm"),
        ),
        StageModel(
            "2 captioning",
            "`llama3_caption` (middle frame of every leaf)",
            *model("llama"),
        ),
        StageModel(
            "3 aggregation",
            f"`gpt` fields ({llm['rounds']} Self-Refine rounds, nodes >= 4 s)",
            *model("llm"),
        ),
    ]


def card_statistics(source: ReleaseSource) -> dict[str, Any]:
    """:func:`action100m.release.stats.compute_stats` (one streaming pass) plus
    annotated segments per video."""
    stats = compute_stats(source)
    videos = stats["videos"]
    stats["gpt_nodes_per_video"] = stats["gpt_nodes"] / videos if videos else None
    return stats


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _statistics_table(stats: dict[str, Any]) -> list[str]:
    paper = stats["paper"]
    rows = [
        ("videos", f"{stats['videos']:,}", f"{PAPER_VIDEOS:,}"),
        ("hours of video", _number(stats["video_hours"], 2), "14.6 years"),
        ("nodes", f"{stats['nodes']:,}", "-"),
        ("nodes per video", _number(stats["nodes_per_video"]), "-"),
        ("annotated segments (`gpt`)", f"{stats['gpt_nodes']:,}", "147 M"),
        (
            "annotated segments per video",
            _number(stats["gpt_nodes_per_video"]),
            _number(PAPER_SEGMENTS / PAPER_VIDEOS),
        ),
        ("deepest tree level", str(stats["max_depth"]), "-"),
        ("mean tree depth", _number(stats["mean_tree_depth"]), "-"),
    ]
    for name, share in stats["duration_hist"].items():
        rows.append(
            (
                f"nodes of {name} s",
                f"{share:.1%}",
                f"{paper['duration_hist'][name]:.1%}",
            )
        )
    for field, mean in stats["mean_words"].items():
        ref = paper["mean_words"].get(field)
        rows.append(
            (f"words per `{field}`", _number(mean), "-" if ref is None else str(ref))
        )
    na = stats["na_rate"]
    rows.append(
        (
            '"N/A" actions',
            "-" if na is None else f"{na:.2%}",
            f"{paper['na_rate']:.2%}",
        )
    )
    lines = ["| | this dataset | Action100M (paper) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines


def _usage(params: DatasetCardParams, shards: bool = False) -> str:
    if shards:
        where = params.hub_repo_id or "PATH"
        note = "" if params.hub_repo_id else "# the folder with this README and data/\n"
        return (
            f"from datasets import load_dataset\n\n{note}"
            f'dataset = load_dataset("{where}", split="train")'
        )
    if params.hub_repo_id:
        return (
            "import fiftyone as fo\n"
            "from fiftyone.utils.huggingface import load_from_hub\n\n"
            f'dataset = load_from_hub("{params.hub_repo_id}")\n'
            "session = fo.launch_app(dataset)"
        )
    return (
        "import fiftyone as fo\n\n"
        "# the folder that holds this README, metadata.json and samples.json\n"
        'dataset = fo.Dataset.from_dir("PATH", dataset_type=fo.types.FiftyOneDataset)\n'
        "session = fo.launch_app(dataset)"
    )


class _CardDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as the Hugging Face cards have them."""


_CardDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def _kind(shards: bool, videos: int) -> str:
    if shards:
        return f"This is a parquet dataset with {videos} videos"
    return (
        "This is a [FiftyOne](https://github.com/voxel51/fiftyone) dataset with "
        f"{videos} video samples"
    )


def _front_matter(
    stats: dict[str, Any], params: DatasetCardParams, shards: bool
) -> str:
    summary = (
        f"{_kind(shards, stats['videos'])} annotated with the "
        f"Action100M Tree-of-Captions pipeline.\n\n## Usage\n\n"
        f"```python\n{_usage(params, shards)}\n```\n"
    )
    header: dict[str, Any] = {
        "annotations_creators": ["machine-generated"],
        "language": "en",
        "size_categories": [size_category(stats["videos"])],
        "task_ids": [],
        "pretty_name": params.pretty_name,
        "tags": list(params.tags),
        "dataset_summary": summary,
        "license": params.license,
    }
    if shards:
        header["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": SHARD_GLOB}],
            }
        ]
    return yaml.dump(
        header, Dumper=_CardDumper, sort_keys=False, allow_unicode=True, width=88
    )


def _models_section(models: list[StageModel] | None) -> list[str]:
    if models is None:
        return [
            "The input file does not record which models wrote its annotations.",
        ]
    lines = ["| stage | output | model | revision |", "|---|---|---|---|"]
    lines += [
        f"| {m.stage} | {m.role} | `{m.model}` | `{m.revision}` |" for m in models
    ]
    return lines


def _fiftyone_structure() -> list[str]:
    fields = [
        f"- `{name}` ({ftype.removesuffix('Field').lower()}): {FIELD_NOTES[name]}."
        for name, ftype in METADATA_SAMPLE_FIELDS
    ]
    gpt = [f"- `{name}`: {note}." for name, note in GPT_NOTES.items()]
    return [
        "Each sample is a video with these fields (null where the video has no "
        "such metadata):",
        "",
        "**Video metadata:**",
        "",
        *fields,
        "",
        "**Transcript segments:**",
        "",
        f"- `{TRANSCRIPT_SEGMENTS}`: one `TemporalDetection` per ASR entry, from "
        "its time to the next entry's (the last to the video's end), its text as "
        "`label`.",
        "",
        "**Structured annotations (Stage 3)**, each a `TemporalDetections` field "
        "with one detection per annotated segment: the text as `label`, the "
        "segment's frames as `support`, and `node_id`, `parent_id` (null for the "
        "root), `level` (0 = root), `start` and `end` (seconds) as attributes:",
        "",
        *gpt,
    ]


def _shards_structure() -> list[str]:
    return [
        f"One row per video, in the shards `{SHARD_GLOB}` (the schema of the "
        "released Action100M parquet):",
        "",
        "- `video_uid` (string): the video's id (its file name without extension).",
        "- `metadata` (struct): "
        + ", ".join(f"`{f.name}`" for f in METADATA)
        + " (null where the video has none).",
        "- `nodes` (list of struct): the Tree-of-Captions, breadth first, each "
        "node with " + ", ".join(f"`{f.name}`" for f in NODE) + "; `gpt` holds "
        "`summary.brief`, `summary.detailed`, `action.brief`, `action.detailed` "
        "and `action.actor` on internal segments of at least 4 s.",
    ]


def render_dataset_card(
    stats: dict[str, Any],
    params: DatasetCardParams,
    models: list[StageModel] | None,
    shards: bool = False,
) -> str:
    """A dataset card as Markdown with YAML front matter.

    Args:
        stats: :func:`card_statistics` of the exported release.
        params: Licence, name, tags and hub repository of the card.
        models: The run's models (:func:`run_models`); None when unknown.
        shards: The card of the release shards (``configs`` naming
            ``data/*.parquet``, a ``datasets`` snippet, the parquet columns)
            instead of the FiftyOne export's.

    Returns:
        The ``README.md`` text.
    """
    install = "datasets" if shards else "fiftyone"
    body = [
        f"# Dataset Card for {params.pretty_name}",
        "",
        f"{_kind(shards, stats['videos'])} ({stats['video_hours']:.2f} hours).",
        "",
        "## Usage",
        "",
        f"```bash\npip install -U {install}\n```",
        "",
        f"```python\n{_usage(params, shards)}\n```",
        "",
        "## Dataset Description",
        "",
        "Each video carries a Tree-of-Captions: a hierarchical temporal "
        "segmentation whose segments hold machine-written captions and, for every "
        "internal segment of at least 4 s, five structured fields (brief and "
        "detailed summary, brief and detailed action, actor), made with the "
        "three-stage recipe of Action100M.",
        "",
        f"- **Licence:** {params.license}",
        "- **Language:** en",
        "- **Recipe:** https://github.com/facebookresearch/Action100M "
        "(paper: https://arxiv.org/abs/2601.10592)",
        "",
        "## Dataset Structure",
        "",
        *(_shards_structure() if shards else _fiftyone_structure()),
        "",
        "Segments of different levels overlap in time: a parent spans its "
        "children. Filter on `level` for one granularity, or follow `parent_id` to "
        "rebuild the tree.",
        "",
        "## Dataset Creation",
        "",
        "All annotations are machine-generated; no person labelled anything. "
        "Stage 1 embeds sampled frames and clusters them with Ward linkage under "
        "a temporal connectivity constraint into a binary tree of contiguous "
        "segments (leaves of at least 0.5 s). Stage 2 captions every segment "
        "from evenly spaced frames and every leaf from its middle frame. Stage 3 "
        "asks an LLM, given the segment's captions, the video's upper levels and "
        "its title, description and transcript, for the five structured fields, "
        "refining its answer over several rounds.",
        "",
        "Models of this dataset:",
        "",
        *_models_section(models),
        "",
        "The settings of the run that wrote these files (every parameter, model "
        "revisions, the prompt template's hash, package versions) are in "
        f"`{RUN_CONFIG_FILE}`, beside this folder in the run's output folder.",
        "",
        "## Statistics",
        "",
        *_statistics_table(stats),
        "",
        "## Bias, Risks, and Limitations",
        "",
        "Captions and annotations come from models and can be wrong or "
        "hallucinated; the Stage 3 fields are the most reliable. Titles, "
        "descriptions and transcripts may hold personal information. The "
        "statistics above describe this dataset only.",
        "",
        "## Citation",
        "",
        f"```bibtex\n{CITATION}\n```",
        "",
    ]
    front = _front_matter(stats, params, shards)
    return f"---\n{front}---\n\n" + "\n".join(body)


def build_dataset_card(
    source: ReleaseSource,
    params: DatasetCardParams,
    models: list[StageModel] | None = None,
    shards: bool = False,
) -> str:
    """The card of a release: its statistics, then :func:`render_dataset_card`."""
    return render_dataset_card(card_statistics(source), params, models, shards)
