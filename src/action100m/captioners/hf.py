"""``TransformersCaptioner``: local vision-language models through transformers.

Works with any ``AutoModelForImageTextToText`` whose processor has a chat
template: PerceptionLM (``PerceptionLMForConditionalGeneration``) on video clips
and Llama-3.2-Vision (``MllamaForConditionalGeneration``) on single frames.
Batches are left-padded and generated together; bf16 on GPU.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from action100m.captioners.base import Captioner, CaptionFailure, CaptionRequest
from action100m.stage_model import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)


class TransformersCaptioner(Captioner):
    """Batched greedy (or sampled) generation with a local model.

    Args:
        model_id: Hub id or local folder (``from_pretrained``).
        revision: Hub revision.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) or a torch dtype name.
        batch_size: Requests generated together.
        max_new_tokens: Generation budget per request.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seed set before every batch, so reruns give the same text.
    """

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 4,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.seed = seed
        self.processor = None
        self.model = None

    def setup(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = resolve_device(self.device)
        self._torch_dtype = resolve_dtype(self.dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(
            self.model_id, revision=self.revision
        )
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.model_id, revision=self.revision, dtype=self._torch_dtype
        )
        self.model.to(self.device).eval()

    def _prompt(self, request: CaptionRequest) -> str:
        conversation = [
            {
                "role": "user",
                "content": [
                    {"type": request.kind},
                    {"type": "text", "text": request.prompt},
                ],
            }
        ]
        return self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )

    def _generate(self, chunk: list[CaptionRequest]) -> list[str]:
        import torch

        texts = [self._prompt(r) for r in chunk]
        if chunk[0].kind == "video":
            media = {"videos": [np.stack(r.frames) for r in chunk]}
        else:
            media = {"images": [[r.frames[0]] for r in chunk]}
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **media)
        inputs = inputs.to(self.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self._torch_dtype)
        torch.manual_seed(self.seed)
        settings: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
        }
        if self.do_sample:
            settings["temperature"] = self.temperature
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in decoded]

    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        results: list[str | CaptionFailure] = []
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i : i + self.batch_size]
            kinds = {r.kind for r in chunk}
            if len(kinds) > 1:
                raise ValueError("a batch mixes video and image requests")
            try:
                results.extend(self._generate(chunk))
            except Exception as exc:  # noqa: BLE001 - isolate the failing request
                if len(chunk) == 1:
                    logger.warning("caption generation failed: %s", exc)
                    results.append(CaptionFailure(f"{type(exc).__name__}: {exc}"))
                else:
                    results.extend(item for r in chunk for item in self([r]))
        return results

    def describe(self) -> dict[str, Any]:
        config = getattr(self.model, "config", None)
        return {
            "backend": "transformers",
            "model_id": self.model_id,
            "revision": self.revision,
            "resolved_revision": getattr(config, "_commit_hash", None),
            "model_class": type(self.model).__name__ if self.model else None,
            "device": str(self.device),
            "dtype": str(self.dtype),
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "seed": self.seed,
        }
