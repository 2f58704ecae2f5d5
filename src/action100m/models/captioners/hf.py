"""``TransformersCaptioner``: local vision-language models through transformers.

Works with any ``AutoModelForImageTextToText`` whose processor has a chat
template: PerceptionLM (``PerceptionLMForConditionalGeneration``) on video clips
and Llama-3.2-Vision (``MllamaForConditionalGeneration``) on single frames.
Batches are left-padded and generated together; bf16 on GPU.

Two ways to generate (``engine``):

- ``continuous`` (default): a :class:`~action100m.models.captioners.engine.SlotEngine`
  in a background thread keeps ``batch_size`` decoding rows busy; a row that ends
  is refilled at once with the next request, across nodes and videos in flight
  (the captioner *streams*: ``submit`` returns a future). A clip's questions
  (same ``clip_id``) share one vision pass and one prefill of the prompt up to the
  video, in one row: the next question continues from the prefix once the
  previous answer ends, so the prompt is held once.
- ``static``: batches left-padded and run through ``generate`` until their
  longest answer ends (the earlier path, kept as the benchmarks' baseline). With
  ``share_video_prefix`` the prefix's KV cache is copied for each question.

Greedy outputs equal those of separate prompts either way.
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
# Share of the free GPU memory one engine's slots may take: the two captioners
# of a worker share one GPU.
ENGINE_MEMORY_SHARE = 0.45


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
    from action100m.models.captioners.engine import kv_geometry

    heads, head_dim = kv_geometry(text)
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
        engine: ``continuous`` (slot refill) or ``static`` (batches through
            ``generate``).
    """

    loaded = ("model", "processor")

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float = 0.0,
        seed: int = 0,
        share_video_prefix: bool = True,
        cache_implementation: str | None = None,
        batch_by_prompt: bool = True,
        engine: str = "continuous",
    ) -> None:
        super().__init__()
        self.engine = engine
        self._engine = None  # the SlotEngine, made at the first request
        import threading

        self._engine_lock = threading.Lock()
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

    @property
    def streams(self) -> bool:  # type: ignore[override]
        return self.engine == "continuous"

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
        made = int((new_tokens != pad).sum())
        rows, columns = new_tokens.shape
        steps = max(0, columns - 1)  # the first token comes from the prefill
        self.work.add(
            generated_tokens=made,
            decode_steps=steps,
            slot_steps=rows * steps,
            busy_tokens=max(0, made - rows),
        )
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
        frames = sum(len(r.frames) if r.kind == "video" else 1 for r in chunk)
        self.work.add(
            calls=1,
            frames=frames,
            prompt_tokens=prompt_tokens,
            prefill_tokens=inputs["input_ids"].numel(),
            vision_frames=frames,
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
        frames = sum(len(u.requests[0].frames) for u in units)
        self.work.add(
            calls=1,
            frames=frames,
            prompt_tokens=int(mask.sum()),
            prefill_tokens=mask.numel(),
            vision_frames=frames,
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
            self.work.add(
                calls=1,
                prompt_tokens=suffix_tokens,
                prefill_tokens=suffix["input_ids"].numel(),
            )
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

    # -- continuous batching ---------------------------------------------------

    def question_limits(self, request: CaptionRequest) -> dict[str, Any]:
        """An answer's limits (``max_new_tokens``, ``min_new_tokens``, ``stop_at``)."""
        return {"max_new_tokens": self.max_new_tokens}

    def _jobs(self, batch: list[CaptionRequest]):
        """``(unit, job)`` for ``batch``: a job per clip when sharing, else per
        request; a unit whose prompt cannot be made gets its error instead."""
        token = getattr(self.processor, "video_token", None)
        share = bool(self.share_video_prefix and token)
        for unit in make_units(batch, share, by_prompt=False):
            try:
                yield unit, self._job(unit, token)
            except Exception as exc:  # noqa: BLE001 - this unit fails, others go on
                logger.warning("caption request failed: %s", exc)
                yield unit, CaptionFailure(f"{type(exc).__name__}: {exc}")

    def _job(self, unit: Unit, token: str | None):
        from action100m.models.captioners.engine import Job, Question

        tokenizer = self.processor.tokenizer
        rendered = [self._prompt(r) for r in unit.requests]
        if len(rendered) > 1:
            prefix = rendered[0][: rendered[0].index(token) + len(token)]
            if any(not t.startswith(prefix) for t in rendered):
                raise ValueError("the prompts of a clip do not share the prefix")
        else:
            prefix = rendered[0]
        first = unit.requests[0]
        inputs = dict(self.encode([prefix], [first]))
        suffixes = [t[len(prefix) :] for t in rendered]
        questions = [
            Question(
                tokenizer(s, add_special_tokens=False)["input_ids"] if s else [],
                **self.question_limits(r),
            )
            for s, r in zip(suffixes, unit.requests, strict=True)
        ]
        frames = len(first.frames) if first.kind == "video" else 1
        cross = inputs.get("cross_attention_mask")
        self.work.add(
            calls=len(questions),
            frames=frames,
            prompt_tokens=int(inputs["attention_mask"].sum())
            + self._vision_tokens(inputs)
            + sum(len(q.suffix_ids) for q in questions),
        )
        return Job(
            inputs,
            questions,
            frames=frames,
            cross_mask=None if cross is None else cross[0, -1],
        )

    def _make_engine(self, job) -> Any:
        """The slot engine, sized from the first job and the free GPU memory."""
        from action100m.models.captioners.engine import SlotEngine, kv_bytes_per_row

        config = self.model.generation_config
        tokenizer = self.processor.tokenizer
        eos = config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [tokenizer.eos_token_id])
        pad = config.pad_token_id
        pad = tokenizer.pad_token_id if pad is None else pad
        capacity = job.inputs["input_ids"].shape[1] + max(
            len(q.suffix_ids) + q.max_new_tokens for q in job.questions
        )
        capacity = -(-capacity // 256) * 256
        cross_capacity = 0
        if job.cross_mask is not None:
            vision = self.model.config.vision_config
            patches = (vision.image_size // vision.patch_size) ** 2 + 1
            tiles = getattr(self.processor.image_processor, "max_image_tiles", None)
            cross_capacity = patches * (tiles or job.cross_mask.numel())
        slots = self.batch_size
        if str(self.device).startswith("cuda"):
            import torch

            free, _ = torch.cuda.mem_get_info(torch.device(self.device))
            per_row = kv_bytes_per_row(self.model, capacity, cross_capacity)
            slots = max(1, min(slots, int(free * ENGINE_MEMORY_SHARE // per_row)))
        logger.info(
            "%s: %d decoding slots of %d positions", self.model_id, slots, capacity
        )
        engine = SlotEngine(
            self.model,
            slots=slots,
            capacity=capacity,
            eos_ids=eos,
            pad_id=pad,
            suppress_ids=list(config.suppress_tokens or []),
            work=self.work,
            decode=lambda ids: self.processor.tokenizer.decode(
                ids, skip_special_tokens=True
            ).strip(),
            cross_capacity=cross_capacity,
        )
        return engine

    def submit_many(self, batch: list[CaptionRequest]) -> list[Any]:
        """Queue ``batch`` with the engine; a future per request, in order."""
        from concurrent.futures import Future

        if not self.streams:
            return super().submit_many(batch)
        futures: list[Any] = [None] * len(batch)
        for unit, job in self._jobs(batch):
            if isinstance(job, CaptionFailure):
                for index in unit.indices:
                    futures[index] = Future()
                    futures[index].set_result(job)
                continue
            with self._engine_lock:
                if self._engine is None:
                    self._engine = self._make_engine(job)
            self._engine.submit(job)
            for index, question in zip(unit.indices, job.questions, strict=True):
                futures[index] = _as_caption(question.future)
        return futures

    def submit(self, request: CaptionRequest):
        if not self.streams:  # static batches answer at once (the base's way)
            return super().submit(request)
        return self.submit_many([request])[0]

    def teardown_engine(self) -> None:
        """Stop the engine and free its slots (the model stays loaded)."""
        if self._engine is not None:
            self._engine.stop()
            self._engine = None

    def teardown(self) -> None:
        self.teardown_engine()
        super().teardown()

    @property
    def slot_engine(self):
        """The continuous-batching engine (None before the first request, or
        with ``engine: static``): its rows, step counts and busy time."""
        return self._engine

    def __call__(self, batch: list[CaptionRequest]) -> list[str | CaptionFailure]:
        if self.streams:
            return [f.result() for f in self.submit_many(batch)]
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
            "engine": self.engine,
        }


def _as_caption(future):
    """A future of the answer text, or of a :class:`CaptionFailure` if it raised."""
    from concurrent.futures import Future

    out: Future = Future()

    def done(f) -> None:
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
        else:
            out.set_result(CaptionFailure(f"{type(exc).__name__}: {exc}"))

    future.add_done_callback(done)
    return out
