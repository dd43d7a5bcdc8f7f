"""CLIP's text tokenizer, as in glide_text2im.tokenizer.simple_tokenizer.SimpleTokenizer.

Same cleaning (ftfy, HTML unescaped twice, whitespace collapsed, lower case), same regex (Python's
`regex` module, so the same Unicode tables), same merge-rule BPE with "</w>" word ends. The merge rules
come from `tokenizer_clip_vocab`. The BPE runs in Python over a heap of candidate pairs with a per-word
cache: well under a millisecond per usual word, about 50 ms for a single 5000-letter word.
"""

from __future__ import annotations

import heapq
import html
from collections.abc import Sequence

import ftfy
import regex

from glide_studio.models.tokenizer_clip_vocab import (
    CLIP_SPECIAL_TEXTS,
    check_merges_build_on_earlier_ones,
    clip_merges,
    clip_vocabulary,
)
from glide_studio.models.tokenizer_common import (
    TokenizerError,
    byte_to_unicode,
    checked_ctx,
    checked_ids,
    checked_text,
    unicode_to_byte,
)

CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
CLIP_VOCAB_SIZE = 49408
CLIP_START_TOKEN = 49406
CLIP_END_TOKEN = 49407
CLIP_PAD_TOKEN = 0
_WORD_END = "</w>"
_WHITESPACE_RUN = regex.compile(r"\s+")
# Bounds the per-word cache so that a stream of unusual prompts cannot grow memory without limit.
_MAX_CACHED_WORDS = 100_000


def clean_clip_text(text: str) -> str:
    """CLIP's normalisation: ftfy, HTML unescaped twice, whitespace collapsed and stripped, lower case."""
    text = ftfy.fix_text(checked_text(text))
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE_RUN.sub(" ", text).strip().lower()


class ClipTokenizer:
    """encode() gives CLIP ids without start/end; padded_tokens_and_len() adds them as GLIDE's CLIP does."""

    vocab_size = CLIP_VOCAB_SIZE
    start_token = CLIP_START_TOKEN
    end_token = CLIP_END_TOKEN
    pad_token = CLIP_PAD_TOKEN

    def __init__(self) -> None:
        merges = clip_merges()
        check_merges_build_on_earlier_ones(merges)
        self._tokens = clip_vocabulary(merges)
        if len(self._tokens) != CLIP_VOCAB_SIZE:
            raise TokenizerError(f"CLIP vocabulary has {len(self._tokens)} ids, expected {CLIP_VOCAB_SIZE}")
        self._ids = {token: token_id for token_id, token in enumerate(self._tokens)}
        self._merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        # Only an exact literal is special; SimpleTokenizer's cache holds exactly these two strings.
        self._special_ids = {text: self._ids[text] for text in CLIP_SPECIAL_TEXTS}
        self._pieces = regex.compile(CLIP_PATTERN, regex.IGNORECASE)
        self._byte_symbols = byte_to_unicode()
        self._symbol_bytes = unicode_to_byte()
        self._word_cache: dict[str, list[int]] = {}

    def encode(self, text: str, max_tokens: int | None = None) -> list[int]:
        """CLIP ids of `text`; with `max_tokens`, only the first ones (same as slicing, but fast)."""
        if max_tokens is not None:
            checked_ctx(max_tokens, 0)
        ids: list[int] = []
        for count, match in enumerate(self._pieces.finditer(clean_clip_text(text))):
            # Every piece yields at least one id, so later pieces cannot reach the kept ids.
            if max_tokens is not None and count >= max_tokens:
                break
            piece = match.group()
            special_id = self._special_ids.get(piece)
            if special_id is not None:
                ids.append(special_id)
            else:
                ids.extend(self._word_ids("".join(self._byte_symbols[b] for b in piece.encode("utf-8"))))
        return ids if max_tokens is None else ids[:max_tokens]

    def _word_ids(self, word: str) -> list[int]:
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        if len(self._word_cache) >= _MAX_CACHED_WORDS:
            self._word_cache.clear()
        ids = [self._ids[symbol] for symbol in self._merged_symbols(word)]
        self._word_cache[word] = ids
        return ids

    def _merged_symbols(self, word: str) -> list[str]:
        """Apply merge rules, best-ranked pair first and left to right, until none applies.

        SimpleTokenizer rescans the whole word after each rule (quadratic: seconds for a 5000-letter
        word); a heap of candidate pairs gives the same result because every symbol a merge creates
        only takes part in later-ranked rules (checked when the vocabulary is loaded).
        """
        symbols: list[str | None] = [*word[:-1], word[-1] + _WORD_END]
        following = list(range(1, len(symbols) + 1))
        preceding = list(range(-1, len(symbols) - 1))
        candidates: list[tuple[int, int, str, str]] = []

        def push_pair(left: int) -> None:
            right = following[left]
            if left >= 0 and right < len(symbols):
                pair = (symbols[left], symbols[right])
                rank = self._merge_rank.get(pair)  # type: ignore[arg-type]
                if rank is not None:
                    heapq.heappush(candidates, (rank, left, *pair))  # type: ignore[misc]

        for position in range(len(symbols) - 1):
            push_pair(position)
        while candidates:
            _, left, first, second = heapq.heappop(candidates)
            right = following[left] if symbols[left] is not None else len(symbols)
            if right >= len(symbols) or symbols[left] != first or symbols[right] != second:
                continue  # this pair was changed by an earlier merge
            symbols[left] = first + second
            symbols[right] = None
            following[left] = following[right]
            if following[left] < len(symbols):
                preceding[following[left]] = left
            push_pair(preceding[left])
            push_pair(left)
        return [symbol for symbol in symbols if symbol is not None]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` as SimpleTokenizer.decode gives it: each word end becomes a space."""
        symbols = "".join(self._tokens[token_id] for token_id in checked_ids(ids, self.vocab_size))
        raw = bytes(self._symbol_bytes[symbol] for symbol in symbols)
        return raw.decode("utf-8", errors="replace").replace(_WORD_END, " ")

    def padded_tokens_and_len(self, ids: Sequence[int], ctx: int = 77) -> tuple[list[int], int]:
        """[start] + ids[:ctx-2] + [end], zero-padded to `ctx`; the length counts both special ids."""
        ctx = checked_ctx(ctx, 2)
        tokens = [self.start_token, *checked_ids(ids, self.vocab_size)[: ctx - 2], self.end_token]
        return tokens + [self.pad_token] * (ctx - len(tokens)), len(tokens)
