"""``TransformersChatClient``: a small local LLM with JSON-schema-constrained decoding.

The answer's grammar comes from the annotation schema through xgrammar's logits
processor, so every completed answer is valid JSON of the right shape by
construction. String fields are limited to printable ASCII without free
whitespace between tokens, which keeps strict JSON parsers happy; their length
is capped so that generation ends.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from action100m.llm.clients import ChatClient, RawAnswer
from action100m.llm.schema import annotation_json_schema
from action100m.stage_model import resolve_device, resolve_dtype


def constrained_schema(max_field_chars: int) -> dict[str, Any]:
    """The annotation schema with every string printable and length-capped."""
    schema = copy.deepcopy(annotation_json_schema())
    for definition in schema.get("$defs", {}).values():
        for prop in definition.get("properties", {}).values():
            if prop.get("type") == "string":
                for key in ("description", "minLength", "maxLength"):
                    prop.pop(key, None)
                prop["pattern"] = f"^[ -~]{{1,{max_field_chars}}}$"
    return schema


class TransformersChatClient(ChatClient):
    """In-process generation (e.g. gpt-oss-20b on one GPU, or a tiny test model).

    Args:
        model: Hub id or local folder (``AutoModelForCausalLM``).
        device: ``auto``, ``cpu``, ``cuda`` ...
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU) or a torch dtype name.
        max_field_chars: Longest string field the grammar allows.
        **kwargs: See :class:`~action100m.llm.clients.ChatClient`.
    """

    backend = "transformers"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        max_field_chars: int = 2000,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.device = device
        self.dtype = dtype
        self.max_field_chars = max_field_chars
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

    def _generate(self, messages: list[dict[str, str]], params: dict[str, Any]):
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        torch.manual_seed(params["seed"])
        settings: dict[str, Any] = {
            "max_new_tokens": params["max_tokens"],
            "logits_processor": [LogitsProcessor(self.grammar)],
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": params["temperature"] > 0,
        }
        if settings["do_sample"]:
            settings["temperature"] = params["temperature"]
        with torch.inference_mode():
            output = self.llm.generate(**inputs, **settings)
        prompt_length = inputs["input_ids"].shape[1]
        new = output[0, prompt_length:]
        eos = self.tokenizer.eos_token_id
        stopped = bool(len(new)) and (
            int(new[-1]) == eos or len(new) < params["max_tokens"]
        )
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        usage = {"prompt_tokens": int(prompt_length), "completion_tokens": len(new)}
        self.work.add_usage(usage)
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
            "constrained_decoding": "xgrammar json_schema",
        }
