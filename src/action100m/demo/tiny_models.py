"""Tiny models built from the real transformers classes (random weights).

They exercise the real loading and inference code offline: ``from_pretrained``
on a local folder, the real processors, the real forward passes. Their outputs
are meaningless.
"""

from __future__ import annotations

import os
import shutil


def build_tiny_vjepa2(folder: str, crop_size: int = 32, seed: int = 0) -> str:
    """Save a tiny ``VJEPA2Model`` and its ``VJEPA2VideoProcessor`` to ``folder``.

    Args:
        folder: Output folder (loadable with ``from_pretrained``).
        crop_size: Input resolution of the model.
        seed: Seed of the random weights.

    Returns:
        The folder.
    """
    import torch
    from transformers import VJEPA2Config, VJEPA2Model, VJEPA2VideoProcessor

    torch.manual_seed(seed)
    config = VJEPA2Config(
        patch_size=16,
        crop_size=crop_size,
        frames_per_clip=8,
        tubelet_size=2,
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        mlp_ratio=2.0,
        pred_hidden_size=16,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        pred_num_mask_tokens=2,
    )
    VJEPA2Model(config).eval().save_pretrained(folder)
    VJEPA2VideoProcessor(crop_size=crop_size).save_pretrained(folder)
    return folder


# Words of the tiny tokenizers: random weights turn them into word salad.
TINY_WORDS = (
    "a the and of in on with to from video image shows person people man woman "
    "hand hands cuts pours cooks opens closes walks talks holds picks places table "
    "kitchen outdoor room camera screen bowl knife board water food paper tool car "
    "road tree dog child stands sits moves turns slowly quickly then while left right"
).split()
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|image|>"
    "{% elif c['type'] == 'video' %}<|video|>{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>"
    "{% endif %}"
)
_SPECIAL = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|image|>",
    "<|video|>",
    "<|python_tag|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
    "<unk>",
)


def _tiny_tokenizer(with_video: bool):
    """A word-level fast tokenizer with Llama-3-style special tokens.

    Like the real Llama 3 tokenizers, it puts ``<|begin_of_text|>`` in front of
    every text it encodes with ``add_special_tokens`` (the default).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_SPECIAL + tuple(TINY_WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = "<|begin_of_text|>"
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, 0)]
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    extra = {"image_token": "<|image|>"}
    if with_video:
        extra["video_token"] = "<|video|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        unk_token="<unk>",
        extra_special_tokens=extra,
    )
    return tokenizer, vocab


def _text_only_generation(model, vocab: dict[str, int]) -> None:
    # Random weights would mostly emit special tokens: keep them to words.
    eos = vocab["<|eot_id|>"]
    model.generation_config.suppress_tokens = [
        vocab[t] for t in _SPECIAL if vocab[t] != eos
    ]
    model.generation_config.pad_token_id = vocab["<|finetune_right_pad_id|>"]
    model.generation_config.eos_token_id = eos


def build_tiny_perception_lm(folder: str, tile_size: int = 56, seed: int = 0) -> str:
    """Save a tiny ``PerceptionLMForConditionalGeneration`` with its real processor.

    The vision tower is timm's Perception Encoder architecture (2 blocks, width
    64); the language model a 2-layer Llama.
    """
    import torch
    from transformers import (
        PerceptionLMConfig,
        PerceptionLMForConditionalGeneration,
        PerceptionLMImageProcessor,
        PerceptionLMProcessor,
        PerceptionLMVideoProcessor,
    )

    tokenizer, vocab = _tiny_tokenizer(with_video=True)
    processor = PerceptionLMProcessor(
        video_processor=PerceptionLMVideoProcessor(
            size={"height": tile_size, "width": tile_size}
        ),
        image_processor=PerceptionLMImageProcessor(
            tile_size=tile_size, max_num_tiles=1, vision_input_type="vanilla"
        ),
        tokenizer=tokenizer,
        patch_size=14,
        pooling_ratio=2,
        chat_template=_CHAT_TEMPLATE,
    )
    patches = tile_size // 14
    config = PerceptionLMConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 48,
            "max_position_embeddings": 4096,
            "pad_token_id": vocab["<|finetune_right_pad_id|>"],
            "bos_token_id": vocab["<|begin_of_text|>"],
            "eos_token_id": vocab["<|eot_id|>"],
        },
        vision_config={
            "model_type": "timm_wrapper",
            "architecture": "vit_pe_core_large_patch14_336",
            "num_classes": 0,
            "model_args": {
                "embed_dim": 64,
                "depth": 2,
                "num_heads": 2,
                "img_size": (tile_size, tile_size),
                "ref_feat_shape": (patches, patches),
                "global_pool": "",
                "use_post_transformer_norm": False,
                "init_values": 0.1,
            },
        },
        image_token_id=tokenizer.image_token_id,
        video_token_id=tokenizer.video_token_id,
        projector_pooling_ratio=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = PerceptionLMForConditionalGeneration(config).eval()
    _text_only_generation(model, vocab)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_mllama(folder: str, image_size: int = 32, seed: int = 0) -> str:
    """Save a tiny ``MllamaForConditionalGeneration`` with its real processor."""
    import torch
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessor,
        MllamaProcessor,
    )

    tokenizer, vocab = _tiny_tokenizer(with_video=False)
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessor(
            size={"height": image_size, "width": image_size}, max_image_tiles=2
        ),
        tokenizer=tokenizer,
        chat_template=_CHAT_TEMPLATE,
    )
    config = MllamaConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 16,
            "max_num_tiles": 2,
            "intermediate_layers_indices": [0],
            "vision_output_dim": 64,
            "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]],
        },
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "cross_attention_layers": [1],
            "max_position_embeddings": 1024,
            "pad_token_id": vocab["<|finetune_right_pad_id|>"],
            "bos_token_id": vocab["<|begin_of_text|>"],
            "eos_token_id": vocab["<|eot_id|>"],
        },
        image_token_index=tokenizer.image_token_id,
    )
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config).eval()
    _text_only_generation(model, vocab)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# The structure of gpt-oss's own chat template, shortened (no tools, no date).
HARMONY_TEMPLATE = (
    "{%- set effort = reasoning_effort if reasoning_effort else 'medium' -%}"
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by "
    "OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: {{ effort }}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for "
    "every message.<|end|>"
    "{%- for m in messages -%}"
    "{%- if m['role'] in ('system', 'developer') -%}"
    "<|start|>developer<|message|># Instructions\n\n{{ m['content'] }}<|end|>"
    "{%- elif m['role'] == 'assistant' -%}"
    "<|start|>assistant<|channel|>final<|message|>{{ m['content'] }}<|end|>"
    "{%- else -%}"
    "<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"
)


def build_tiny_gpt_oss(folder: str, seed: int = 0) -> str:
    """Save a tiny ``GptOssForCausalLM`` (2 layers, 4 experts) and a byte-level BPE
    tokenizer trained on a few sentences, with gpt-oss's special tokens and a chat
    template of the real one's structure (harmony: a system turn that states the
    reasoning effort, the caller's system text as developer instructions, past
    answers on the final channel, the generation prompt ``<|start|>assistant``)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GptOssConfig, GptOssForCausalLM, PreTrainedTokenizerFast

    special = [
        "<|startoftext|>",
        "<|endoftext|>",
        "<|start|>",
        "<|message|>",
        "<|end|>",
        "<|return|>",
        "<|channel|>",
        "<|constrain|>",
        "<|call|>",
        "<|pad|>",
    ]
    from action100m.models.llm.prompts import default_template
    from action100m.models.llm.schema import response_structure

    # Trained on the Stage 3 prompt's own text as well, so that a prompt takes
    # about as many tokens as with a real tokenizer (~4 characters per token)
    # rather than one per byte.
    template = default_template()
    corpus = [
        " ".join(TINY_WORDS),
        '{"summary": {"brief": "", "detailed": ""}, '
        '"action": {"brief": "N/A", "detailed": "", "actor": ""}}',
        template.system,
        template.user,
        template.refine,
        response_structure(),
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus * 10,
        vocab_size=1200,
        min_frequency=1,
        special_tokens=special,
        show_progress=False,
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|startoftext|>",
        eos_token="<|return|>",
        pad_token="<|pad|>",
    )
    tokenizer.chat_template = HARMONY_TEMPLATE
    config = GptOssConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=32,
        num_local_experts=4,
        num_experts_per_tok=2,
        sliding_window=64,
        max_position_embeddings=131072,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    GptOssForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_MODELS = {
    "vjepa2": build_tiny_vjepa2,
    "perception_lm": build_tiny_perception_lm,
    "mllama": build_tiny_mllama,
    "gpt_oss": build_tiny_gpt_oss,
}


def build_tiny_models(root: str) -> dict[str, str]:
    """Build every tiny model missing under ``root`` (``<root>/<name>``)."""
    folders = {}
    for name, build in TINY_MODELS.items():
        folder = os.path.join(root, name)
        if not os.path.exists(os.path.join(folder, "config.json")):
            tmp = folder + ".part"
            os.makedirs(tmp, exist_ok=True)
            build(tmp)
            if os.path.exists(folder):
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        folders[name] = folder
    return folders
