"""``TransformersCaptioner``: local vision-language models through transformers.

Works with any ``AutoModelForImageTextToText`` whose processor has a chat
template: PerceptionLM (``PerceptionLMForConditionalGeneration``) on video clips
and Llama-3.2-Vision (``MllamaForConditionalGeneration``) on single frames.
Batches are left-padded and generated together; bf16 on GPU.

With ``share_video_prefix`` the requests of one clip (same ``clip_id``: the
caption and the action question of a node) share one vision pass and one
prefill of the video: the prompt up to the video is run once, its KV cache is
copied, and each question continues from it. Greedy outputs equal those of
separate prompts.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from action100m.models.base import resolve_device, resolve_dtype
from action100m.models.captioners.base import Captioner, CaptionFailure, CaptionRequest
from action100m.models.captioners.batching import Unit, make_units, run_batches

logger = logging.getLogger(__name__)
MEMORY_HEADROOM = 0.7  # share of free GPU memory a batch may plan to use


def rows_that_fit(
    free: int,
    text,
    element: int,
    prompt_tokens: int,
    shared: bool,
    max_new_tokens: int,
    cap: int,
) -> int:
    """Batch rows that fit in ``MEMORY_HEADROOM`` of ``free`` bytes (1 to ``cap``).

    A row's peak is its KV cache (the prompt, held twice while a question continues
    from a copy of a shared prefix, plus a full answer) and its widest prefill
    activation (the MLP's), for the language model of config ``text``.
    """
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or (
        text.hidden_size // text.num_attention_heads
    )
    kv_per_token = 2 * text.num_hidden_layers * heads * head_dim * element
    held = prompt_tokens * (2 if shared else 1) + max_new_tokens
    per_row = kv_per_token * held + prompt_tokens * text.intermediate_size * element * 2
    return max(1, min(cap, int(free * MEMORY_HEADROOM // per_row)))


class TransformersCaptioner(Captioner):
    """Batched greedy (or sampled) generation with a local model.

    Args:
        model_id: Hub id or local folder (``from_pretrained``).
        revision: Hub revision.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) or a torch dtype name.
        batch_size: The most requests (clips when sharing) generated together;
            on GPU the batch is smaller when free memory says so.
        max_new_tokens: Generation budget per request.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seed set before every batch, so reruns give the same text.
        share_video_prefix: One vision pass and prefill per clip for all its
            prompts (requests with the same ``clip_id``).
        cache_implementation: ``None`` (dynamic KV cache) or ``static`` (a
            fixed-size cache that transformers compiles the decoding step for).
        batch_by_prompt: Batch requests with equal prompts together, shortest
            prompts first (False: in the order given, prompts mixed).
    """

    loaded = ("model", "processor")

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
        share_video_prefix: bool = False,
        cache_implementation: str | None = None,
        batch_by_prompt: bool = True,
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
        self.share_video_prefix = share_video_prefix
        self.cache_implementation = cache_implementation
        self.batch_by_prompt = batch_by_prompt
        self.generation_overrides: dict[str, Any] = {}
        self.processor = None
        self.model = None
        self._memory_cap: int | None = None  # learnt from out-of-memory errors
        self._tokens_per_unit = 0  # prompt tokens of a batch row, last seen

    def setup(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = resolve_device(self.device)
        self._torch_dtype = resolve_dtype(self.dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(
            self.model_id, revision=self.revision
        )
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.model_id, revision=self.revision, dtype=self._torch_dtype
        )
        self.model.to(self.device).eval()
        self.attach(self.model, self.processor, self._torch_dtype)

    def attach(self, model, processor, torch_dtype) -> None:
        """Use an already built model and processor (benchmarks, random weights)."""
        self.model, self.processor, self._torch_dtype = model, processor, torch_dtype
        self.processor.tokenizer.padding_side = "left"
        self._ready = True

    # -- prompts -------------------------------------------------------------

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

    def encode(self, texts: list[str], requests: list[CaptionRequest]):
        """Tokens and pixels of rendered prompts (the template already has BOS)."""
        import torch

        if requests[0].kind == "video":
            media = {"videos": [np.stack(r.frames) for r in requests]}
        else:
            media = {"images": [[r.frames[0]] for r in requests]}
        inputs = self.processor(
            text=texts,
            padding=True,
            return_tensors="pt",
            add_special_tokens=False,
            **media,
        ).to(self.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self._torch_dtype)
        return inputs

    def _vision_tokens(self, inputs) -> int:
        """Vision tokens outside ``input_ids`` (Mllama's cross-attended tiles)."""
        mask = inputs.get("aspect_ratio_mask")
        if mask is None:
            return 0
        vision = self.model.config.vision_config
        per_tile = (vision.image_size // vision.patch_size) ** 2 + 1
        return int(mask.sum()) * per_tile

    # -- generation ----------------------------------------------------------

    def _settings(self, rows: list[CaptionRequest]) -> dict[str, Any]:
        """``generate`` settings for a batch whose rows answer ``rows``."""
        settings: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
        }
        if self.do_sample:
            settings["temperature"] = self.temperature
        if self.cache_implementation:
            settings["cache_implementation"] = self.cache_implementation
        return settings | self.generation_overrides

    def _decode(self, output, prompt_length: int) -> list[str]:
        new_tokens = output[:, prompt_length:]
        pad = self.processor.tokenizer.pad_token_id
        self.work.add(generated_tokens=int((new_tokens != pad).sum()))
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in decoded]

    def _generate(self, chunk: list[CaptionRequest]) -> list[str]:
        """One prompt per row: the whole prompt is prefilled for every request."""
        import torch

        inputs = self.encode([self._prompt(r) for r in chunk], chunk)
        prompt_tokens = int(inputs["attention_mask"].sum()) + self._vision_tokens(
            inputs
        )
        self._tokens_per_unit = prompt_tokens // len(chunk)
        self.work.add(
            calls=1,
            frames=sum(len(r.frames) if r.kind == "video" else 1 for r in chunk),
            prompt_tokens=prompt_tokens,
        )
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self._settings(chunk))
        return self._decode(output, inputs["input_ids"].shape[1])

    def _generate_shared(self, units: list[Unit]) -> list[list[str]]:
        """Each clip's frames encoded and its prefix prefilled once, then every
        prompt continues from a copy of that KV cache."""
        import torch

        token = self.processor.video_token
        rendered = [[self._prompt(r) for r in u.requests] for u in units]
        prefixes = [
            texts[0][: texts[0].index(token) + len(token)] for texts in rendered
        ]
        suffixes = [
            [t[len(p) :] for t in texts] for p, texts in zip(prefixes, rendered)
        ]
        if any(
            not t.startswith(p) for p, texts in zip(prefixes, rendered) for t in texts
        ):
            raise ValueError("the prompts of a clip do not share the video prefix")
        inputs = self.encode(prefixes, [u.requests[0] for u in units])
        mask = inputs["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        self.work.add(
            calls=1,
            frames=sum(len(u.requests[0].frames) for u in units),
            prompt_tokens=int(mask.sum()),
        )
        with torch.inference_mode():
            prefill = self.model(
                **inputs, position_ids=positions, use_cache=True, logits_to_keep=1
            )
        cache = prefill.cache
        del prefill
        tokenizer = self.processor.tokenizer
        answers: list[list[str]] = [[] for _ in units]
        n_prompts = len(units[0].requests)
        for p in range(n_prompts):
            # Unequal prompts are left-padded: the gap sits after the prefix.
            suffix = tokenizer(
                [s[p] for s in suffixes],
                add_special_tokens=False,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            full_ids = torch.cat([inputs["input_ids"], suffix["input_ids"]], dim=1)
            full_mask = torch.cat([mask, suffix["attention_mask"]], dim=1)
            branch = cache if p == n_prompts - 1 else copy.deepcopy(cache)
            suffix_tokens = int(suffix["attention_mask"].sum())
            self._tokens_per_unit = int(full_mask.sum()) // len(units)
            self.work.add(calls=1, prompt_tokens=suffix_tokens)
            settings = self._settings([u.requests[p] for u in units])
            settings.pop("cache_implementation", None)  # the prefix's cache is given
            torch.manual_seed(self.seed)
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=full_ids,
                    attention_mask=full_mask,
                    cache=branch,
                    **settings,
                )
            for row, text in enumerate(self._decode(output, full_ids.shape[1])):
                answers[row].append(text)
        return answers

    def _generate_units(self, units: list[Unit]) -> list[list[str]]:
        if len(units[0].requests) > 1:
            return self._generate_shared(units)
        return [[text] for text in self._generate([u.requests[0] for u in units])]

    # -- batch sizes ---------------------------------------------------------

    def _batch_limit(self, unit: Unit) -> int:
        """``batch_size``, lowered by out-of-memory errors and free GPU memory."""
        cap = min(self.batch_size, self._memory_cap or self.batch_size)
        if not str(self.device).startswith("cuda") or not self._tokens_per_unit:
            return cap
        import torch

        device = torch.device(self.device)
        free, _ = torch.cuda.mem_get_info(device)
        # Memory the allocator holds but no tensor uses is free for this batch.
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return rows_that_fit(
            free,
            self.model.config.get_text_config(),
            torch.finfo(self._torch_dtype).bits // 8,
            self._tokens_per_unit,
            len(unit.requests) > 1,
            self.max_new_tokens,
            cap,
        )

    def _out_of_memory(self, size: int) -> None:
        import torch

        self._memory_cap = max(1, (size + 1) // 2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        share = self.share_video_prefix and getattr(self.processor, "video_token", None)
        return run_batches(
            make_units(batch, bool(share), by_prompt=self.batch_by_prompt),
            self._generate_units,
            self._batch_limit,
            self._out_of_memory,
            len(batch),
        )

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
            "share_video_prefix": self.share_video_prefix,
            "cache_implementation": self.cache_implementation,
            "batch_by_prompt": self.batch_by_prompt,
        }
