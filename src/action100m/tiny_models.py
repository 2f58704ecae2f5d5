"""Tiny models built from the real transformers classes (random weights).

They exercise the real loading and inference code offline: ``from_pretrained``
on a local folder, the real processors, the real forward passes. Their outputs
are meaningless.
"""

from __future__ import annotations


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
