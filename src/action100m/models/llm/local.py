"""``TransformersChatClient``: a small local LLM with JSON-schema-constrained decoding.

The answer's grammar comes from the annotation schema through xgrammar's logits
processor, so every completed answer is valid JSON of the right shape by
construction. Strings take any Unicode character but control characters (the
release has curly quotes, non-breaking hyphens and narrow spaces); their length
is capped so that generation ends.

A model whose tokenizer speaks gpt-oss's harmony format reasons first, freely,
on its ``analysis`` channel (at the reasoning effort the chat template is
given), for at most ``reasoning_max_tokens``; then its ``final`` channel is
opened and only that answer is constrained. A model that never ends its
reasoning (random weights) is moved to its answer when the budget is spent.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from action100m.models.base import resolve_device, resolve_dtype
from action100m.models.llm.clients import ChatClient, RawAnswer
from action100m.models.llm.schema import annotation_json_schema

HARMONY_ANALYSIS = "<|channel|>analysis<|message|>"
HARMONY_FINAL = "<|start|>assistant<|channel|>final<|message|>"
HARMONY_END = "<|end|>"


# Any character but control characters (C0, DEL, C1); quotes and backslashes
# would need JSON escapes, which a pattern over the raw text cannot express.
STRING_CHARS = r'[^\x00-\x1f\x7f-\x9f"\\]'


def constrained_schema(max_field_chars: int) -> dict[str, Any]:
    """The annotation schema with every string 1 to ``max_field_chars`` characters
    of :data:`STRING_CHARS`."""
    schema = copy.deepcopy(annotation_json_schema())
    for definition in schema.get("$defs", {}).values():
        for prop in definition.get("properties", {}).values():
            if prop.get("type") == "string":
                for key in ("description", "minLength", "maxLength"):
                    prop.pop(key, None)
                prop["pattern"] = f"^{STRING_CHARS}{{1,{max_field_chars}}}$"
    return schema


class TransformersChatClient(ChatClient):
    """In-process generation (e.g. gpt-oss-20b on one GPU, or a tiny test model).

    Args:
        model: Hub id or local folder (``AutoModelForCausalLM``).
        device: ``auto``, ``cpu``, ``cuda`` ...
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) or a torch dtype name.
        max_field_chars: Longest string field the grammar allows.
        reasoning_max_tokens: Reasoning budget of a harmony model, after which
            its final channel is opened (part of ``max_tokens``).
        **kwargs: See :class:`~action100m.models.llm.clients.ChatClient`.
    """

    loaded = ("llm", "tokenizer", "grammar")

    backend = "transformers"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        max_field_chars: int = 2000,
        reasoning_max_tokens: int = 2048,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.device = device
        self.dtype = dtype
        self.max_field_chars = max_field_chars
        self.reasoning_max_tokens = reasoning_max_tokens
        self._lock: asyncio.Lock | None = None

    def setup(self) -> None:
        import xgrammar
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = resolve_device(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        self.llm = AutoModelForCausalLM.from_pretrained(
            self.model, dtype=resolve_dtype(self.dtype, self.device)
        )
        self.llm.to(self.device).eval()
        info = xgrammar.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=self.llm.config.vocab_size
        )
        self.grammar = xgrammar.GrammarCompiler(info).compile_json_schema(
            json.dumps(constrained_schema(self.max_field_chars)), any_whitespace=False
        )
        vocab = self.tokenizer.get_vocab()
        self.harmony = all(
            token in vocab for token in ("<|channel|>", "<|message|>", HARMONY_END)
        )

    def _tokens(self, text: str):
        import torch

        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return torch.tensor([ids], device=self.device)

    def _generate(self, messages: list[dict[str, str]], params: dict[str, Any]):
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        inputs = self.tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
            reasoning_effort=params.get("reasoning_effort"),
        ).to(self.device)
        ids = inputs["input_ids"]
        prompt_length = ids.shape[1]
        torch.manual_seed(params["seed"])
        sampling: dict[str, Any] = {
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": params["temperature"] > 0,
        }
        if sampling["do_sample"]:
            sampling["temperature"] = params["temperature"]
        budget, reasoning = params["max_tokens"], 0
        with torch.inference_mode():
            if self.harmony:
                # Free reasoning on the analysis channel, then the final channel.
                end = self.tokenizer.convert_tokens_to_ids(HARMONY_END)
                ids = torch.cat([ids, self._tokens(HARMONY_ANALYSIS)], dim=1)
                start = ids.shape[1]
                reasoned = self.llm.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max(1, min(self.reasoning_max_tokens, budget - 1)),
                    eos_token_id=end,
                    return_dict_in_generate=True,
                    **sampling,
                )
                ids = reasoned.sequences
                # The answer continues from the reasoning's cache: no second prefill.
                sampling["cache"] = reasoned.cache
                reasoning = ids.shape[1] - start
                closed = int(ids[0, -1]) == end
                opener = HARMONY_FINAL if closed else HARMONY_END + HARMONY_FINAL
                ids = torch.cat([ids, self._tokens(opener)], dim=1)
                budget = max(1, budget - reasoning)
            answer_start = ids.shape[1]
            output = self.llm.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=budget,
                logits_processor=[LogitsProcessor(self.grammar)],
                **sampling,
            )
        new = output[0, answer_start:]
        eos = self.tokenizer.eos_token_id
        stopped = bool(len(new)) and (int(new[-1]) == eos or len(new) < budget)
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        usage = {
            "prompt_tokens": int(prompt_length),
            "completion_tokens": reasoning + len(new),
            "reasoning_tokens": reasoning,
        }
        self.count(usage)
        return RawAnswer(text, "stop" if stopped else "length", usage)

    async def _request(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> RawAnswer:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one generation at a time on this device
            return await asyncio.to_thread(self._generate, messages, params)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "device": str(self.device),
            "dtype": str(self.dtype),
            "max_field_chars": self.max_field_chars,
            "reasoning_max_tokens": self.reasoning_max_tokens,
            "constrained_decoding": "xgrammar json_schema (final answer only)",
        }
