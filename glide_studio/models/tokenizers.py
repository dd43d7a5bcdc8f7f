"""The two text tokenizers GLIDE needs, matching OpenAI's reference implementation id for id.

- `gpt2_tokenizer()`: GLIDE's own text encoder input (GPT-2 BPE, 128 tokens, padded with 50256 + mask).
- `clip_tokenizer()`: the noised CLIP text encoder input (CLIP BPE, 77 tokens, start/end, zero pad + length).

Both are built once per process and shared; they hold no per-run state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from glide_studio.models.tokenizer_clip import (
    CLIP_END_TOKEN,
    CLIP_PAD_TOKEN,
    CLIP_START_TOKEN,
    CLIP_VOCAB_SIZE,
    ClipTokenizer,
    clean_clip_text,
)
from glide_studio.models.tokenizer_common import TokenizerError, checked_ctx
from glide_studio.models.tokenizer_gpt2 import GPT2_END_TOKEN, GPT2_VOCAB_SIZE, Gpt2Tokenizer

__all__ = [
    "CLIP_END_TOKEN",
    "CLIP_PAD_TOKEN",
    "CLIP_START_TOKEN",
    "CLIP_VOCAB_SIZE",
    "GPT2_END_TOKEN",
    "GPT2_VOCAB_SIZE",
    "ClipTokenizer",
    "Gpt2Tokenizer",
    "TokenizerError",
    "clean_clip_text",
    "clip_tokenize_prompts",
    "clip_tokenizer",
    "gpt2_tokenizer",
    "tokenize_prompts",
]


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer() -> Gpt2Tokenizer:
    return Gpt2Tokenizer()


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> ClipTokenizer:
    return ClipTokenizer()


def _checked_prompts(prompts: Sequence[str]) -> Sequence[str]:
    if isinstance(prompts, str):
        raise TokenizerError("expected a list of prompts, got a single str (wrap it in a list)")
    if len(prompts) == 0:
        raise TokenizerError("expected at least one prompt, got an empty list")
    return prompts


def tokenize_prompts(prompts: Sequence[str], ctx: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """GLIDE text input for a batch: tokens LongTensor (B, ctx) and mask BoolTensor (B, ctx)."""
    ctx = checked_ctx(ctx, 1)
    tokenizer = gpt2_tokenizer()
    rows, masks = [], []
    for prompt in _checked_prompts(prompts):
        tokens, mask = tokenizer.padded_tokens_and_mask(tokenizer.encode(prompt, max_tokens=ctx), ctx)
        rows.append(tokens)
        masks.append(mask)
    return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool)


def clip_tokenize_prompts(prompts: Sequence[str], ctx: int = 77) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP text input for a batch: tokens LongTensor (B, ctx) and text_len LongTensor (B,)."""
    ctx = checked_ctx(ctx, 2)
    tokenizer = clip_tokenizer()
    rows, lengths = [], []
    for prompt in _checked_prompts(prompts):
        tokens, length = tokenizer.padded_tokens_and_len(tokenizer.encode(prompt, max_tokens=ctx - 2), ctx)
        rows.append(tokens)
        lengths.append(length)
    return torch.tensor(rows, dtype=torch.long), torch.tensor(lengths, dtype=torch.long)
