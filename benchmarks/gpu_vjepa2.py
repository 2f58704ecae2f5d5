"""V-JEPA 2 ViT-g-384 embedder throughput on a GPU (random weights, bf16).

Builds the full-size ``facebook/vjepa2-vitg-fpc64-384`` architecture with random
weights, saves it to a local folder and loads it through the project's
``VJEPA2Embedder`` (the real ``from_pretrained`` path), then measures:

- model throughput: windows/s and sampled frames/s (a window advances 8 frames)
  for batches of 1, 2, 4 and 8 windows of 64 frames at 384x384;
- the streaming embedder end to end (processor on CPU + model on GPU) on
  synthetic 16:9 frames, batched (4 windows) vs one window at a time.

Needs only torch, transformers and numpy (no Kedro):

    PYTHONPATH=src python3 benchmarks/gpu_vjepa2.py [--tiny] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from transformers import VJEPA2Config, VJEPA2Model, VJEPA2VideoProcessor

from action100m.models.embedders.vjepa2 import VJEPA2Embedder
from action100m.models.embedders.windows import embed_frame_stream

VITG_384 = dict(
    hidden_size=1408,
    num_hidden_layers=40,
    num_attention_heads=22,
    mlp_ratio=48 / 11,
    crop_size=384,
    frames_per_clip=64,
    patch_size=16,
    tubelet_size=2,
    pred_hidden_size=384,
    pred_num_hidden_layers=12,
    pred_num_attention_heads=12,
    pred_num_mask_tokens=10,
)
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    mlp_ratio=2.0,
    crop_size=32,
    frames_per_clip=8,
    patch_size=16,
    tubelet_size=2,
    pred_hidden_size=16,
    pred_num_hidden_layers=1,
    pred_num_attention_heads=2,
    pred_num_mask_tokens=2,
)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(folder: str, config: dict, device: str) -> float:
    start = time.perf_counter()
    with torch.device(device):
        model = VJEPA2Model(VJEPA2Config(**config)).to(torch.bfloat16).eval()
    model.save_pretrained(folder)
    VJEPA2VideoProcessor(crop_size=config["crop_size"]).save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="CPU dry run")
    parser.add_argument("--out", default=None)
    parser.add_argument("--frames", type=int, default=384)
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    config = TINY if args.tiny else VITG_384
    window, stride = config["frames_per_clip"], 8 if not args.tiny else 4
    report: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": "tiny" if args.tiny else "vitg-384",
    }
    folder = tempfile.mkdtemp(prefix="vjepa2_")
    report["build_save_s"] = build(folder, config, device)

    embedder = VJEPA2Embedder(
        folder, device=device, dtype="bfloat16", window=window, window_stride=stride
    )
    start = time.perf_counter()
    embedder.ensure_setup()
    report["from_pretrained_s"] = time.perf_counter() - start
    params = sum(p.numel() for p in embedder.model.parameters())
    report["parameters_m"] = params / 1e6
    report["attn_implementation"] = embedder.model.config._attn_implementation

    size = config["crop_size"]
    model_rows = []
    for batch in (1, 2, 4, 8):
        pixels = torch.randn(batch, window, 3, size, size)
        embedder(pixels)  # warm-up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        repeats = 3
        start = time.perf_counter()
        for _ in range(repeats):
            out = embedder(pixels)
        sync(device)
        seconds = (time.perf_counter() - start) / repeats
        row = {
            "batch_windows": batch,
            "seconds_per_call": seconds,
            "windows_per_s": batch / seconds,
            "sampled_frames_per_s": batch * stride / seconds,
            "output_shape": list(out.shape),
        }
        if device == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        model_rows.append(row)
        print(json.dumps(row), flush=True)
    report["model"] = model_rows

    short = embedder.short_side
    width = int(round(short * 16 / 9 / 2) * 2)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (64, short, width, 3), dtype=np.uint8)
    start = time.perf_counter()
    embedder.preprocess(frames)
    report["processor_frames_per_s"] = 64 / (time.perf_counter() - start)

    def stream():
        for i in range(0, args.frames, 64):
            yield np.arange(i, i + 64) * 4 / 30, frames

    e2e = []
    for batch in (1, 4):
        sync(device)
        start = time.perf_counter()
        times, emb = embed_frame_stream(embedder, stream(), batch_size=batch)
        sync(device)
        seconds = time.perf_counter() - start
        row = {
            "batch_windows": batch,
            "sampled_frames": len(times),
            "seconds": seconds,
            "sampled_frames_per_s": len(times) / seconds,
            "embedding_dim": int(emb.shape[1]),
        }
        e2e.append(row)
        print(json.dumps(row), flush=True)
    report["end_to_end"] = e2e
    report["batched_vs_single_speedup_model"] = (
        model_rows[2]["windows_per_s"] / model_rows[0]["windows_per_s"]
    )
    report["batched_vs_single_speedup_end_to_end"] = (
        e2e[1]["sampled_frames_per_s"] / e2e[0]["sampled_frames_per_s"]
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
