"""Run tracking: per-stage wall, CPU and GPU hours, model revisions, to MLflow.

``RunTrackingHook`` (registered in ``settings.py``) writes the run's record
(:mod:`action100m.runtime.run_record`) as its first node starts, times every
node from its start to the end of the last save of its outputs (the lazy
per-video work runs inside those saves), takes the union of those spans per
stage (pipeline), so nodes that overlap under a threaded runner are not counted
twice, and logs them to the MLflow run that kedro-mlflow opened, together with
every model's id and resolved revision, the prompt template hash, package
versions, the project's git commit, and how many per-video outputs each dataset
reused, wrote and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any

from kedro.framework.hooks import hook_impl

from action100m.models.work import RUN_WORK
from action100m.runtime.mlflow_params import plain_params, session_params
from action100m.runtime.run_record import RUN_CONFIG, RUN_CONFIG_FILE, run_record

logger = logging.getLogger(__name__)
# Datasets logged as MLflow artifacts once the run ends (name -> artifact folder).
# A catalog entry whose metadata holds `mlflow_artifact` is logged as an artifact
# of the run once saved (the value: the artifact folder; "" for the top level).
ARTIFACT_KEY = "mlflow_artifact"
MAX_TIMELINE_ARTIFACTS = 200  # a large run keeps the rest in its output folder only
PACKAGES = (
    "action100m",
    "kedro",
    "kedro-mlflow",
    "mlflow",
    "torch",
    "transformers",
    "av",
    "openai",
    "xgrammar",
    "scikit-learn",
    "pyarrow",
    "ray",
    "numpy",
)


def artifact_location(tracking_uri: str | None = None) -> str | None:
    """Where a new experiment keeps its artifacts: beside the tracking store.

    ``MLFLOW_ARTIFACT_LOCATION`` wins; a SQLite store ``sqlite:///DIR/x.db`` gives
    ``DIR/mlartifacts``; other stores (a folder, a server) keep their own default
    (None), which is already where the runs are. The store is
    ``MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``.
    """
    chosen = os.environ.get("MLFLOW_ARTIFACT_LOCATION")
    if chosen:
        return chosen
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if not uri.startswith("sqlite:///"):
        return None
    database = os.path.abspath(uri.removeprefix("sqlite:///"))
    return os.path.join(os.path.dirname(database), "mlartifacts")


def folder_revision(folder: str, full_hash_below: int = 50_000_000) -> str:
    """A content hash of a local model folder (names, sizes, small files' bytes)."""
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            digest.update(f"{os.path.relpath(path, folder)}:{size}".encode())
            if size < full_hash_below:
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return "sha256:" + digest.hexdigest()[:16]


def resolve_revision(model_id: str | None, revision: str | None = None) -> str | None:
    """The commit of a hub model's local snapshot, or a local folder's content hash."""
    if not model_id:
        return None
    if os.path.isdir(model_id):
        return folder_revision(model_id)
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(model_id, revision=revision, local_files_only=True)
        return os.path.basename(path.rstrip("/"))
    except Exception:  # noqa: BLE001 - not downloaded yet: report what was asked
        return revision or "unresolved"


def model_identities(params: dict[str, Any]) -> dict[str, str]:
    """``role.model_id`` and ``role.revision`` of every model the params name."""
    roles: dict[str, tuple[str | None, str | None]] = {}
    embedder = params.get("segmentation", {}).get("embedder", {})
    if embedder.get("backend") == "vjepa2":
        roles["embedder"] = (embedder.get("model_id"), embedder.get("revision"))
    for role in ("plm", "llama"):
        cfg = params.get("captioning", {}).get(role, {})
        if cfg.get("backend") != "openai":
            roles[role] = (cfg.get("model_id"), cfg.get("revision"))
        else:
            roles[role] = (cfg.get("model_id"), "served")
    llm = params.get("aggregation", {}).get("llm", {})
    roles["llm"] = (
        llm.get("model"),
        None if llm.get("backend") == "transformers" else "served",
    )
    found = {}
    for role, (model_id, revision) in roles.items():
        if not model_id:
            continue
        found[f"model.{role}.id"] = model_id
        found[f"model.{role}.revision"] = (
            revision if revision == "served" else resolve_revision(model_id, revision)
        )
    return found


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def _git_commit(folder: str | None = None) -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def stored_bytes(path: str) -> int | None:
    """Bytes of a local file, or of every file under a local folder (None: absent)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if not os.path.isdir(path):
        return None
    total, folders = 0, [path]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def storage_metrics(locations: dict[str, str], video_hours: float) -> dict[str, float]:
    """``storage.<name>_bytes_per_video_hour`` of each local dataset location.

    Args:
        locations: Dataset name -> its file or folder (``file://`` or a path;
            other URLs are not measured).
        video_hours: The run's hours of video.

    Returns:
        Bytes on disk per hour of video, one metric per dataset found.
    """
    metrics = {}
    for name, location in sorted(locations.items()):
        if video_hours <= 0 or ("://" in location and not location.startswith("file:")):
            continue
        size = stored_bytes(location.removeprefix("file://"))
        if size is not None:
            metrics[f"storage.{name}_bytes_per_video_hour"] = size / video_hours
    return metrics


class RunTrackingHook:
    """Per-stage timing and model identities, logged to the active MLflow run."""

    def __init__(self) -> None:
        self._stage_of: dict[str, str] = {}
        self._spans: dict[str, list[float]] = {}  # node -> wall, cpu start/end
        self.resume: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.run_counts: dict[str, float] = {}
        self._catalog: Any = None
        self._saved: set[str] = set()
        self._stored: dict[str, str] = {}  # dataset name -> its location
        self._params: dict[str, Any] = {}
        self._record: dict[str, Any] | None = None  # the run's, until written
        self._record_lock = threading.Lock()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = {
            key: value.model_dump() if hasattr(value, "model_dump") else value
            for key, value in context.params.items()
        }

    @hook_impl(trylast=True)  # after kedro-mlflow has opened the run
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        from action100m.pipeline_registry import STAGES

        # Each pipeline tags its nodes with its stage's name.
        stages = {*STAGES, "reannotate"}
        for node in pipeline.nodes:
            tagged = sorted(node.tags & stages)
            self._stage_of[node.name] = tagged[0] if tagged else "other"
        self.wall.clear()
        self.cpu.clear()
        RUN_WORK.reset()
        self._spans.clear()
        self.resume.clear()
        self._catalog = catalog
        self._saved.clear()
        self._stored.clear()
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        versions = {p: _version(p) for p in PACKAGES}
        commit = _git_commit(run_params.get("project_path"))
        tags = {f"version.{p}": v for p, v in versions.items()}
        tags["git_commit"] = commit or "unknown"
        from action100m.core.params import PromptParams
        from action100m.models.llm.prompts import load_prompt_template

        params = session_params(catalog)
        plain = plain_params(params)
        models = model_identities(plain)
        path = plain.get("aggregation", {}).get("prompt", {}).get("template")
        path = path or PromptParams().template
        prompt = {"template": path, "hash": load_prompt_template(path).hash()}
        identities = {
            **models,
            "prompt.aggregation_hash": prompt["hash"],
            "prompt.aggregation_template": path,
        }
        names = run_params.get("pipeline_names") or ["__default__"]
        tags["kedro.env"] = run_params.get("env") or "base"
        record = run_record(
            params,
            run_params,
            models,
            prompt,
            versions,
            commit,
            started_at,
            self._log(lambda mlflow: mlflow.active_run().info.run_id),
        )
        # Written beside the outputs once the first node starts: a run stopped
        # before any work (a missing model folder) leaves the last one's.
        self._record = record if RUN_CONFIG in catalog else None
        self._log(
            lambda mlflow: (
                mlflow.set_tags(tags),
                mlflow.log_params(identities),
                mlflow.log_dict(record, RUN_CONFIG_FILE),
                _name_run(mlflow, "+".join(names), tags["kedro.env"]),
            )
        )

    def _close(self) -> None:
        """Per stage: the union of its nodes' wall spans, the sum of CPU time."""
        by_stage: dict[str, list[tuple[float, float]]] = {}
        for name, (start, end, cpu_start, cpu_end) in self._spans.items():
            stage = self._stage_of.get(name, "other")
            by_stage.setdefault(stage, []).append((start, end))
            self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_end - cpu_start
        for stage, spans in by_stage.items():
            total, reach = 0.0, float("-inf")
            for start, end in sorted(spans):
                total += max(0.0, end - max(start, reach))
                reach = max(reach, end)
            self.wall[stage] = total
        self._spans.clear()

    def _mark_end(self, node) -> None:
        if node is not None and node.name in self._spans:
            self._spans[node.name][1] = time.perf_counter()
            self._spans[node.name][3] = time.process_time()

    @hook_impl
    def before_node_run(self, node) -> None:
        with self._record_lock:
            record, self._record = self._record, None
        if record is not None:
            self._catalog.save(RUN_CONFIG, record)
        now, cpu = time.perf_counter(), time.process_time()
        self._spans[node.name] = [now, now, cpu, cpu]

    @hook_impl
    def after_node_run(self, node, outputs) -> None:
        self._mark_end(node)
        summary = outputs.get("run_summary")
        if isinstance(summary, dict):
            found = summary.get("metrics", {})
            self.run_counts = {
                key: found[key]
                for key in ("video_hours", "videos", "nodes", "llm_requests")
                if isinstance(found.get(key), int | float)
            }
            # The models' work so far (the stages' saves ran before this node),
            # in the summary file too: `action100m estimate-cost --from` reads it.
            work = RUN_WORK.metrics(self.run_counts.get("video_hours"))
            if work:
                summary["work"] = work

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node=None) -> None:
        self._mark_end(node)  # the lazy per-video work ran inside this save
        dataset = self._catalog.get(dataset_name) if self._catalog else None
        if ARTIFACT_KEY in (getattr(dataset, "metadata", None) or {}):
            self._saved.add(dataset_name)
        if isinstance(getattr(dataset, "location", None), str):
            self._stored[dataset_name] = dataset.location
        counts = getattr(dataset, "counts", None)
        for key, value in (counts or {}).items():
            self.resume[f"outputs.{dataset_name}.{key}"] = value

    @hook_impl(tryfirst=True)  # before kedro-mlflow ends the run
    def after_pipeline_run(self) -> None:
        self._close()
        metrics = {**self.stage_metrics(), **self.resume}
        video_hours = self.run_counts.get("video_hours") or 0.0
        metrics.update(storage_metrics(self._stored, video_hours))
        self._log(lambda mlflow: mlflow.log_metrics(metrics))
        self._log(self._log_artifacts)

    def _log_artifacts(self, mlflow) -> None:
        """The files of the catalog entries marked as artifacts, saved this run
        (the run summary, the errors table, timeline PNGs)."""
        for name in sorted(self._saved):
            dataset = self._catalog.get(name)
            folder = dataset.metadata[ARTIFACT_KEY] or None
            path = str(dataset.location).removeprefix("file://")
            if os.path.isfile(path):
                mlflow.log_artifact(path, folder)
            elif os.path.isdir(path):
                files = sorted(
                    f for f in os.listdir(path) if not f.startswith((".", "_"))
                )
                for file in files[:MAX_TIMELINE_ARTIFACTS]:
                    mlflow.log_artifact(os.path.join(path, file), folder)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self) -> None:
        self._close()
        metrics = self.stage_metrics()
        self._log(lambda mlflow: mlflow.log_metrics(metrics))

    def stage_metrics(self) -> dict[str, float]:
        """Wall seconds, CPU-hours and GPU-hours per stage, and their totals."""
        gpus = _gpu_count()
        metrics: dict[str, float] = {}
        for stage, wall in self.wall.items():
            metrics[f"{stage}.wall_s"] = wall
            metrics[f"{stage}.cpu_hours"] = self.cpu.get(stage, 0.0) / 3600
            metrics[f"{stage}.gpu_hours"] = wall * gpus / 3600
        total_gpu = sum(v for k, v in metrics.items() if k.endswith(".gpu_hours"))
        metrics["total.gpu_hours"] = total_gpu
        metrics["total.cpu_hours"] = sum(self.cpu.values()) / 3600
        metrics["total.wall_s"] = sum(self.wall.values())
        video_hours = self.run_counts.get("video_hours")
        if video_hours:
            metrics["gpu_hours_per_video_hour"] = total_gpu / video_hours
            metrics["video_hours_per_gpu_day"] = (
                video_hours / (total_gpu / 24) if total_gpu else 0.0
            )
            metrics["video_hours_per_wall_hour"] = video_hours / (
                metrics["total.wall_s"] / 3600
            )
        if metrics["total.wall_s"] > 0:
            for key in ("videos", "nodes"):
                if key in self.run_counts:
                    metrics[f"{key}_per_s"] = (
                        self.run_counts[key] / metrics["total.wall_s"]
                    )
        metrics.update(RUN_WORK.metrics(video_hours))  # work.<role>.<counter>
        if self.run_counts.get("llm_requests") and self.wall.get("aggregation"):
            metrics["llm_requests_per_s"] = (
                self.run_counts["llm_requests"] / self.wall["aggregation"]
            )
        return metrics

    @staticmethod
    def _log(action) -> Any:
        """``action(mlflow)``'s result when a run is active, else None."""
        try:
            import mlflow

            if mlflow.active_run() is not None:
                return action(mlflow)
        except Exception as exc:  # noqa: BLE001 - tracking must not fail a run
            logger.warning("MLflow logging failed: %s", exc)
        return None


def _name_run(mlflow, pipelines: str, env: str) -> None:
    """``<pipelines>@<env>``, unless ``mlflow.yml`` gave the run another name."""
    run = mlflow.active_run()
    if run.info.run_name == pipelines:
        mlflow.set_tag("mlflow.runName", f"{pipelines}@{env}")


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "absent"
