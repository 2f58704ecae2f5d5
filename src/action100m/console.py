"""``action100m``: validate and summarise release files, build demo inputs, list
the parameters."""

from __future__ import annotations

import argparse
import json
import sys

from action100m.core.params import DatasetCardParams
from action100m.release.shards import open_release

# Every command that reads a release takes one of these.
RELEASE_ARG_HELP = (
    "a release parquet, a folder of shards (its data/*.parquet) or a glob of shards"
)


def _validate(args: argparse.Namespace) -> int:
    from action100m.release.validation import check_release

    try:
        report = check_release(
            args.file,
            require_captions=not args.allow_missing_captions,
            strict=args.strict,
            require_gpt=not args.allow_missing_gpt,
        )
    except Exception as exc:  # noqa: BLE001 - report any unreadable file
        print(f"{args.file}: cannot read parquet: {exc}")
        return 1
    problems = report.problems
    if problems:
        print(f"{args.file}: {len(problems)} violation(s)")
        for problem in problems[: args.max_report]:
            print(f"- {problem}")
        if len(problems) > args.max_report:
            print(f"... and {len(problems) - args.max_report} more")
        return 1
    no_plm = report.without_plm_caption
    note = f"; {no_plm} without plm_caption" if no_plm else ""
    print(f"{args.file}: valid ({report.videos} videos, {report.nodes} nodes{note})")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from action100m.release.stats import compute_stats, format_stats

    stats = compute_stats(args.file)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _demo_footage(args: argparse.Namespace) -> int:
    from action100m.demo.footage import build_demo_footage

    paths = build_demo_footage(args.out, count=args.count, seed=args.seed)
    print(f"{len(paths)} demo videos (and one broken file) in {args.out}")
    return 0


def _view(args: argparse.Namespace) -> int:
    from action100m.core.tree import SegmentTree
    from action100m.release.viewer import render_html

    row = open_release(args.file).find(args.video_uid)
    if row is None:
        print(f"{args.file}: no video_uid {args.video_uid!r}")
        return 1
    tree = SegmentTree.from_release_row(row)
    video = args.video or f"https://www.youtube.com/embed/{args.video_uid}"
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(render_html(tree, video))
    print(f"{args.out}: {len(tree.nodes)} nodes")
    return 0


def _fiftyone(args: argparse.Namespace) -> int:
    import os

    from action100m.core.tree import SegmentTree
    from action100m.datasets import FiftyOneDatasetDir, TextFileDataset
    from action100m.datasets.video_folder import VIDEO_EXTENSIONS
    from action100m.media.video import VideoSource, probe_video
    from action100m.release.dataset_card import build_dataset_card
    from action100m.release.fiftyone_format import VideoFrames, video_sample

    def frames(uid: str, tree: SegmentTree) -> VideoFrames | None:
        folder = args.videos_dir or "."
        for ext in VIDEO_EXTENSIONS:
            path = os.path.join(folder, uid + ext)
            if os.path.isfile(path):
                info = probe_video(VideoSource(uid, path))
                return VideoFrames.from_probe(path, info.to_dict())
        if args.fps is None:
            return None
        duration = tree.root.end
        return VideoFrames(
            filepath=os.path.abspath(os.path.join(folder, uid + ".mp4")),
            fps=args.fps,
            frame_count=max(1, round(duration * args.fps)),
            duration=duration,
        )

    release = open_release(args.file)

    def trees():
        return (SegmentTree.from_release_row(row) for row in release.rows())

    videos = {t.video_uid: frames(t.video_uid, t) for t in trees()}
    missing = [uid for uid, found in videos.items() if found is None]
    if missing:
        print(
            f"{len(missing)} video(s) not found in {args.videos_dir or '.'} "
            f"(e.g. {missing[0]!r}): give --videos-dir, or --fps to place their "
            "segments on frames without the files"
        )
        return 1
    annotated = 0

    def samples():
        nonlocal annotated
        for tree in trees():
            annotated += sum(n.gpt is not None for n in tree.nodes)
            yield video_sample(tree, videos[tree.video_uid])

    FiftyOneDatasetDir(path=args.out).save(samples())
    card = DatasetCardParams(license=args.license, pretty_name=args.name)
    TextFileDataset(filepath=os.path.join(args.out, "README.md")).save(
        build_dataset_card(release, card)
    )
    print(f"{args.out}: {len(videos)} video samples, {annotated} annotated segments")
    return 0


def _tiny_models(args: argparse.Namespace) -> int:
    from action100m.demo.tiny_models import build_tiny_models

    for name, folder in build_tiny_models(args.out).items():
        print(f"{name:<14} {folder}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from pathlib import Path

    from action100m.core.param_table import format_markdown, format_text, replace_tables

    if args.write is None:
        print(format_markdown() if args.format == "markdown" else format_text(), end="")
        return 0
    target = Path(args.write)
    text = target.read_text(encoding="utf-8")
    target.write_text(replace_tables(text, format_markdown()), encoding="utf-8")
    print(f"{target}: parameter tables written")
    return 0


def _estimate_cost(args: argparse.Namespace) -> int:
    from action100m.runtime import cost

    try:
        if args.calibrate_from:
            card = _calibrate(args)
            print(f"{cost.card_path(args.card)}: calibration {card.calibration}")
            return 0
        card = cost.load_card(args.card)
        counters, source = cost.load_counters(args.source, card, args.tracking_uri)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"estimate-cost: {exc}")
        return 1
    result = cost.estimate(counters, card)
    if args.json:
        print(json.dumps(result | {"card": card.name, "source": source}, indent=1))
    else:
        print(cost.format_estimate(result, card, args.video_hours, source))
    return 0


def _calibrate(args: argparse.Namespace):
    """Write the card's calibration measured by a ``gpu_cost`` run."""
    import datetime
    from pathlib import Path

    from action100m.runtime import cost

    path = Path(args.calibrate_from)
    run = json.loads(path.read_text(encoding="utf-8"))
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    measured_on = args.measured_on or run.get("date") or stamp.date().isoformat()
    return cost.write_card(
        cost.card_path(args.card), run, cost.shown(path), measured_on
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="action100m", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser(
        "validate", help="check a parquet against the release schema and invariants"
    )
    validate.add_argument("file", help=RELEASE_ARG_HELP)
    validate.add_argument(
        "--allow-missing-captions",
        action="store_true",
        help="accept trees without Stage 2/3 fields (misplaced fields still fail)",
    )
    validate.add_argument(
        "--allow-missing-gpt",
        action="store_true",
        help="accept trees before Stage 3 (no gpt fields); captions still required",
    )
    validate.add_argument(
        "--strict",
        action="store_true",
        help="also require plm_caption on every node (the release misses ~0.1%%)",
    )
    validate.add_argument("--max-report", type=int, default=50)
    validate.set_defaults(func=_validate)

    stats = sub.add_parser("stats", help="corpus statistics of a release parquet")
    stats.add_argument("file", help=RELEASE_ARG_HELP)
    stats.add_argument("--json", action="store_true", help="print a JSON object")
    stats.set_defaults(func=_stats)

    footage = sub.add_parser("demo-footage", help="generate the demo videos")
    footage.add_argument("--out", default="data/01_raw/videos")
    footage.add_argument("--count", type=int, default=3)
    footage.add_argument("--seed", type=int, default=0)
    footage.set_defaults(func=_demo_footage)

    view = sub.add_parser("view", help="write a self-contained HTML viewer of one tree")
    view.add_argument("file", help=RELEASE_ARG_HELP)
    view.add_argument("--video-uid", required=True)
    view.add_argument("--out", required=True)
    view.add_argument("--video", help="video URL or path relative to the page")
    view.set_defaults(func=_view)

    fiftyone = sub.add_parser(
        "fiftyone",
        help="write a FiftyOne dataset directory (fo.types.FiftyOneDataset)",
    )
    fiftyone.add_argument("file", help=RELEASE_ARG_HELP)
    fiftyone.add_argument("--out", required=True, help="the dataset directory")
    fiftyone.add_argument(
        "--videos-dir", help="where <video_uid>.<ext> files are (probed for fps)"
    )
    fiftyone.add_argument(
        "--fps",
        type=float,
        help="frame rate for videos that are not found (their filepath points "
        "to <videos-dir>/<video_uid>.mp4)",
    )
    fiftyone.add_argument(
        "--license",
        default=DatasetCardParams().license,
        help="licence id in the dataset card (README.md) written beside it",
    )
    fiftyone.add_argument("--name", default=DatasetCardParams().pretty_name)
    fiftyone.set_defaults(func=_fiftyone)

    tiny = sub.add_parser(
        "tiny-models",
        help="build tiny random-weight models from the real classes (offline demo)",
    )
    tiny.add_argument("--out", default="data/06_models")
    tiny.set_defaults(func=_tiny_models)

    params = sub.add_parser(
        "params",
        help="every parameter: type, default, allowed values, whether it changes "
        "results, meaning",
    )
    params.add_argument("--format", choices=("text", "markdown"), default="text")
    params.add_argument(
        "--write",
        metavar="FILE",
        help="write the markdown tables between the params markers of FILE "
        "(e.g. README.md)",
    )
    params.set_defaults(func=_params)
    estimate = sub.add_parser(
        "estimate-cost",
        help="GPU-hours of Stages 1+2 for a run's work counters on a card "
        "(roofline and calibrated)",
    )
    estimate.add_argument("--video-hours", type=float, default=1.0)
    estimate.add_argument(
        "--card", default="h200", help="conf/cards/<name>.yml or a path"
    )
    estimate.add_argument(
        "--from",
        dest="source",
        help="a run_summary.json (or its output folder), an MLflow run id or a "
        "gpu_cost JSON; default: the run the card was calibrated on",
    )
    estimate.add_argument("--tracking-uri", help="MLflow tracking URI for a run id")
    estimate.add_argument(
        "--calibrate-from",
        help="a gpu_cost JSON measured on this card: write the card's calibration",
    )
    estimate.add_argument("--measured-on", help="the run's date (default: the file's)")
    estimate.add_argument("--json", action="store_true", help="print a JSON object")
    estimate.set_defaults(func=_estimate_cost)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
