"""PerceptionLM-3B and Llama-3.2-11B-Vision generation throughput on a GPU.

Builds both full-size architectures with random weights in bf16 directly on the
GPU (no download), wraps them in the project's ``TransformersCaptioner`` and
measures generated tokens/s at fixed lengths (the release's mean caption lengths:
about 90 tokens for PLM captions, 210 for Llama captions; 8 for PLM action
labels), batched vs one node at a time. Then projects GPU-seconds per minute of
video (84.3 nodes and 42.3 leaves per minute, as in the release sample). Any
failed request fails the run. ``gpu_cost.py`` measures the pipeline end to end.

Needs torch, transformers, timm and numpy (no Kedro):

    PYTHONPATH=src python3 benchmarks/gpu_captioners.py [--tiny] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from action100m.demo.tiny_models import (
    _CHAT_TEMPLATE,
    _tiny_tokenizer,
    build_tiny_mllama,
    build_tiny_perception_lm,
)
from action100m.models.captioners import CaptionRequest, TransformersCaptioner

# PerceptionLM-3B's language model (facebook/Perception-LM-3B config.json).
PLM_TEXT = dict(
    vocab_size=128256,
    hidden_size=3072,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    intermediate_size=8192,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    tie_word_embeddings=True,
)
NODES_PER_MINUTE = 84.3  # the release sample
LEAVES_PER_MINUTE = 42.3


def plm_parts():
    from transformers import (
        PerceptionLMConfig,
        PerceptionLMForConditionalGeneration,
        PerceptionLMImageProcessor,
        PerceptionLMProcessor,
        PerceptionLMVideoProcessor,
    )

    tokenizer, _ = _tiny_tokenizer(with_video=True)
    tile = 448
    processor = PerceptionLMProcessor(
        video_processor=PerceptionLMVideoProcessor(
            size={"height": tile, "width": tile}
        ),
        image_processor=PerceptionLMImageProcessor(tile_size=tile, max_num_tiles=1),
        tokenizer=tokenizer,
        patch_size=14,
        pooling_ratio=2,
        chat_template=_CHAT_TEMPLATE,
    )
    text = dict(model_type="llama", **PLM_TEXT)
    vision = dict(embed_dim=1024, depth=23, num_heads=16)
    patches = tile // 14
    config = PerceptionLMConfig(
        text_config=text,
        vision_config={
            "model_type": "timm_wrapper",
            "architecture": "vit_pe_core_large_patch14_336",
            "num_classes": 0,
            "model_args": {
                **vision,
                "img_size": (tile, tile),
                "ref_feat_shape": (patches, patches),
                "global_pool": "",
                "use_post_transformer_norm": False,
            },
        },
        image_token_id=tokenizer.image_token_id,
        video_token_id=tokenizer.video_token_id,
        projector_pooling_ratio=2,
    )
    return PerceptionLMForConditionalGeneration, config, processor


def llama_parts():
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessor,
        MllamaProcessor,
    )

    tokenizer, _ = _tiny_tokenizer(with_video=False)
    size = 560
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessor(
            size={"height": size, "width": size}, max_image_tiles=4
        ),
        tokenizer=tokenizer,
        chat_template=_CHAT_TEMPLATE,
    )
    vision = dict(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_global_layers=8,
        num_attention_heads=16,
        image_size=size,
        patch_size=14,
        max_num_tiles=4,
        vision_output_dim=7680,
        intermediate_layers_indices=[3, 7, 15, 23, 30],
    )
    text = dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=40,
        num_attention_heads=32,
        num_key_value_heads=8,
        cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38],
        max_position_embeddings=131072,
        rope_theta=500000.0,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = MllamaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.image_token_id,
    )
    return MllamaForConditionalGeneration, config, processor


def tiny_captioner(build, folder: str) -> TransformersCaptioner:
    """A CPU dry run: the tiny model the offline demo uses, loaded for real."""
    start = time.perf_counter()
    captioner = TransformersCaptioner(build(folder), device="cpu", dtype="float32")
    captioner.ensure_setup()
    captioner.build_s = time.perf_counter() - start
    return captioner


def captioner_for(parts, device: str, dtype) -> TransformersCaptioner:
    model_class, config, processor = parts
    start = time.perf_counter()
    with torch.device(device):
        model = model_class(config).to(dtype).eval()
    captioner = TransformersCaptioner("random-weights", device=device)
    captioner.attach(model, processor, dtype)
    captioner.build_s = time.perf_counter() - start
    return captioner


def measure(captioner, requests, tokens: int, batch: int, device: str) -> dict:
    gen = captioner.model.generation_config
    gen.min_new_tokens = gen.max_new_tokens = tokens
    captioner.max_new_tokens, captioner.batch_size = tokens, batch
    captioner(requests[:batch])  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    texts = captioner(requests)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    failed = sum(not isinstance(t, str) for t in texts)
    if failed:  # a throughput of failed requests means nothing
        raise RuntimeError(f"{failed} of {len(requests)} requests failed: {texts}")
    row = {
        "batch": batch,
        "requests": len(requests),
        "tokens_each": tokens,
        "seconds": seconds,
        "seconds_per_request": seconds / len(requests),
        "generated_tokens_per_s": len(requests) * tokens / seconds,
        "failed": failed,
    }
    if device == "cuda":
        row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="CPU dry run")
    parser.add_argument("--out", default=None)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    rng = np.random.default_rng(0)
    report: dict = {"device": torch.cuda.get_device_name() if not args.tiny else "cpu"}
    n = args.requests
    scratch = tempfile.mkdtemp(prefix="gpu_captioners")

    try:
        plm = (
            tiny_captioner(build_tiny_perception_lm, f"{scratch}/plm")
            if args.tiny
            else captioner_for(plm_parts(), device, dtype)
        )
        report["plm_params_b"] = sum(p.numel() for p in plm.model.parameters()) / 1e9
        clips = [
            list(rng.integers(0, 255, (32, 320, 320, 3), dtype=np.uint8))
            for _ in range(n)
        ]
        requests = [
            CaptionRequest(c, "Describe this video in detail.", "video") for c in clips
        ]
        report["plm_caption"] = [measure(plm, requests, 90, b, device) for b in (1, n)]
        report["plm_action"] = [measure(plm, requests, 8, b, device) for b in (1, n)]
        del plm
    except Exception as exc:  # noqa: BLE001 - report and go on to Llama
        report["plm_error"] = f"{type(exc).__name__}: {exc}"
        print(report["plm_error"], flush=True)
    if device == "cuda":
        torch.cuda.empty_cache()

    try:
        llama = (
            tiny_captioner(build_tiny_mllama, f"{scratch}/mllama")
            if args.tiny
            else captioner_for(llama_parts(), device, dtype)
        )
        report["llama_params_b"] = (
            sum(p.numel() for p in llama.model.parameters()) / 1e9
        )
        frames = [
            [rng.integers(0, 255, (480, 854, 3), dtype=np.uint8)] for _ in range(n)
        ]
        requests = [
            CaptionRequest(f, "Describe this image in detail.", "image") for f in frames
        ]
        report["llama_caption"] = [
            measure(llama, requests, 210, b, device) for b in (1, n)
        ]
        del llama
    except Exception as exc:  # noqa: BLE001
        report["llama_error"] = f"{type(exc).__name__}: {exc}"
        print(report["llama_error"], flush=True)

    if "plm_caption" in report and "llama_caption" in report:
        for label, index in (("one_at_a_time", 0), ("batched", 1)):
            per_minute = (
                NODES_PER_MINUTE
                * (
                    report["plm_caption"][index]["seconds_per_request"]
                    + report["plm_action"][index]["seconds_per_request"]
                )
                + LEAVES_PER_MINUTE
                * report["llama_caption"][index]["seconds_per_request"]
            )
            report[f"gpu_s_per_video_minute_{label}"] = per_minute
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    if "plm_error" in report or "llama_error" in report:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
