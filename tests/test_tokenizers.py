"""The GPT-2 and CLIP tokenizers against OpenAI's reference outputs (tokens.json) and their own contracts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import regex
import torch

from glide_studio.models.tokenizer_clip import CLIP_PATTERN
from glide_studio.models.tokenizer_clip_vocab import clip_merges, clip_vocabulary
from glide_studio.models.tokenizer_common import byte_to_unicode
from glide_studio.models.tokenizer_gpt2 import GPT2_PATTERN, _read_vocabulary_files
from glide_studio.models.tokenizers import (
    TokenizerError,
    clean_clip_text,
    clip_tokenize_prompts,
    clip_tokenizer,
    gpt2_tokenizer,
    tokenize_prompts,
)

LONG_PROMPT = ("A richly detailed oil painting of a small corgi, 1920s style; café «naïve» 🐶 " * 80)[:5000]
EDGE_TEXTS = [
    "",
    " ",
    "a",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\n  \n",
    "word   \n  word",
    "x!<|endoftext|>y <|startoftext|>",
    "İstanbul ΟΔΟΣ straße ﬁne",
    "한국어 프롬프트 一只柯基犬 🐶🐕👍🏽 ❤️",
    "1,000,000 3.14159 ١٢٣",
    "&amp;lt;b&amp;gt; cafÃ© ＡＢＣ",
    LONG_PROMPT,
]


@pytest.fixture(scope="module")
def reference_prompts(reference_dir: Path) -> list[dict]:
    data = json.loads((reference_dir / "tokens.json").read_text(encoding="utf-8"))
    assert len(data["prompts"]) == 28
    return data["prompts"]


def _mismatches(prompts: list[dict], compute, expected) -> list[str]:
    return [entry["name"] for entry in prompts if compute(entry["prompt"]) != expected(entry)]


def test_gpt2_ids_match_reference(reference_prompts):
    tok = gpt2_tokenizer()
    assert _mismatches(reference_prompts, tok.encode, lambda e: e["text2im"]["ids"]) == []


def test_gpt2_padding_and_mask_match_reference(reference_prompts):
    tok = gpt2_tokenizer()
    for entry in reference_prompts:
        tokens, mask = tok.padded_tokens_and_mask(tok.encode(entry["prompt"]), 128)
        assert tokens == entry["text2im"]["padded_tokens"], entry["name"]
        assert mask == entry["text2im"]["mask"], entry["name"]
        assert sum(mask) == entry["text2im"]["num_valid"], entry["name"]


def test_gpt2_decode_matches_reference(reference_prompts):
    tok = gpt2_tokenizer()
    for entry in reference_prompts:
        assert tok.decode(entry["text2im"]["ids"]) == entry["text2im"]["decoded_ids"], entry["name"]


def test_clip_cleaning_matches_reference(reference_prompts):
    expected = lambda e: e["clip"]["cleaned_lowercased_text"]  # noqa: E731
    assert _mismatches(reference_prompts, clean_clip_text, expected) == []


def test_clip_ids_match_reference(reference_prompts):
    tok = clip_tokenizer()
    assert _mismatches(reference_prompts, tok.encode, lambda e: e["clip"]["ids"]) == []


def test_clip_padding_and_length_match_reference(reference_prompts):
    tok = clip_tokenizer()
    for entry in reference_prompts:
        tokens, text_len = tok.padded_tokens_and_len(tok.encode(entry["prompt"]), 77)
        assert tokens == entry["clip"]["padded_tokens"], entry["name"]
        assert text_len == entry["clip"]["text_len"], entry["name"]


def test_clip_decode_matches_reference(reference_prompts):
    tok = clip_tokenizer()
    for entry in reference_prompts:
        assert tok.decode(entry["clip"]["ids"]) == entry["clip"]["decoded_ids"], entry["name"]


def test_batch_helpers_match_reference(reference_prompts):
    prompts = [entry["prompt"] for entry in reference_prompts]
    tokens, mask = tokenize_prompts(prompts)
    assert tokens.dtype == torch.long and mask.dtype == torch.bool
    assert tokens.shape == mask.shape == (len(prompts), 128)
    assert tokens.tolist() == [entry["text2im"]["padded_tokens"] for entry in reference_prompts]
    assert mask.tolist() == [entry["text2im"]["mask"] for entry in reference_prompts]

    clip_tokens, text_len = clip_tokenize_prompts(prompts)
    assert clip_tokens.dtype == torch.long and text_len.dtype == torch.long
    assert clip_tokens.shape == (len(prompts), 77) and text_len.shape == (len(prompts),)
    assert clip_tokens.tolist() == [entry["clip"]["padded_tokens"] for entry in reference_prompts]
    assert text_len.tolist() == [entry["clip"]["text_len"] for entry in reference_prompts]


def test_empty_prompt_is_the_unconditional_input():
    tokens, mask = tokenize_prompts([""])
    assert tokens.tolist() == [[50256] * 128] and not mask.any()
    clip_tokens, text_len = clip_tokenize_prompts([""])
    assert clip_tokens[0, :2].tolist() == [49406, 49407] and not clip_tokens[0, 2:].any()
    assert text_len.tolist() == [2]


def test_tokenizers_are_shared_instances():
    assert gpt2_tokenizer() is gpt2_tokenizer()
    assert clip_tokenizer() is clip_tokenizer()


def test_truncated_encode_equals_slicing():
    gpt2, clip = gpt2_tokenizer(), clip_tokenizer()
    for text in EDGE_TEXTS:
        for limit in (0, 1, 3, 75, 128):
            assert gpt2.encode(text, max_tokens=limit) == gpt2.encode(text)[:limit], (text[:40], limit)
            assert clip.encode(text, max_tokens=limit) == clip.encode(text)[:limit], (text[:40], limit)


def test_long_prompt_is_truncated():
    gpt2_full, clip_full = gpt2_tokenizer().encode(LONG_PROMPT), clip_tokenizer().encode(LONG_PROMPT)
    assert len(LONG_PROMPT) == 5000 and len(gpt2_full) > 128 and len(clip_full) > 75
    tokens, mask = tokenize_prompts([LONG_PROMPT, "a corgi"])
    assert tokens[0].tolist() == gpt2_full[:128] and mask[0].all()
    assert mask[1].sum().item() == len(gpt2_tokenizer().encode("a corgi"))
    clip_tokens, text_len = clip_tokenize_prompts([LONG_PROMPT])
    assert clip_tokens[0].tolist() == [49406, *clip_full[:75], 49407] and text_len.tolist() == [77]


@pytest.mark.parametrize(
    "text", ["a red circle above a blue square", "café 한국어 🐶🏽 ΟΔΟΣ\t\n  x", LONG_PROMPT]
)
def test_gpt2_decode_round_trip(text):
    tok = gpt2_tokenizer()
    assert tok.decode(tok.encode(text)) == text.lower()


def test_clip_decode_round_trip():
    tok = clip_tokenizer()
    assert (
        tok.decode(tok.encode("A red   circle, above a blue square!"))
        == "a red circle , above a blue square ! "
    )
    assert tok.decode([49406, *tok.encode("corgi"), 49407]) == "<|startoftext|>corgi <|endoftext|>"


def test_clip_special_token_only_where_the_regex_starts_a_piece():
    tok = clip_tokenizer()
    assert tok.encode("a <|endoftext|>")[-1] == 49407
    assert 49407 not in tok.encode("a!<|endoftext|>")  # swallowed by the punctuation run, as in CLIP


def test_lone_surrogates_are_replaced_not_fatal():
    for tok in (gpt2_tokenizer(), clip_tokenizer()):
        assert tok.encode("a \ud800 b") == tok.encode("a \ufffd b")


BAD_CALLS = [
    lambda: gpt2_tokenizer().encode(None),
    lambda: clip_tokenizer().encode(b"bytes"),
    lambda: gpt2_tokenizer().decode([50257]),
    lambda: clip_tokenizer().decode([-1]),
    lambda: gpt2_tokenizer().decode("abc"),
    lambda: gpt2_tokenizer().padded_tokens_and_mask([1, 2], 0),
    lambda: clip_tokenizer().padded_tokens_and_len([1, 2], 1),
    lambda: tokenize_prompts("a single string"),
    lambda: tokenize_prompts([]),
    lambda: clip_tokenize_prompts(["ok"], ctx="77"),
    lambda: tokenize_prompts(["ok", 3]),
]


def test_bad_input_raises_tokenizer_error():
    for index, call in enumerate(BAD_CALLS):
        with pytest.raises(TokenizerError):
            call()
            pytest.fail(f"bad call number {index} raised nothing")


def _merge_rule_bpe_encoder():
    """GLIDE's algorithm (merge rules by rank), to check that tiktoken's token-rank merging agrees."""
    encoder, merge_lines = _read_vocabulary_files()
    ranks = {tuple(line.split()): rank for rank, line in enumerate(merge_lines[1:]) if line}
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    byte_symbols = {b: chr(b) for b in printable}
    byte_symbols.update({b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in printable)})
    pieces = regex.compile(GPT2_PATTERN)

    def encode(text: str) -> list[int]:
        ids = []
        for piece in pieces.findall(text.lower()):
            symbols = [byte_symbols[b] for b in piece.encode("utf-8")]
            while len(symbols) > 1:
                candidates = [
                    (ranks.get(pair, len(ranks)), i)
                    for i, pair in enumerate(zip(symbols[:-1], symbols[1:], strict=True))
                ]
                rank, i = min(candidates)
                if rank == len(ranks):
                    break
                symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
            ids.extend(encoder[symbol] for symbol in symbols)
        return ids

    return encode


def test_gpt2_agrees_with_merge_rule_bpe_on_random_text():
    reference_encode = _merge_rule_bpe_encoder()
    alphabet = [
        *"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"-_()[]<>|&\t\n",
        *map(chr, range(0xA0, 0x250)),
        *map(chr, range(0x370, 0x400)),
        *map(chr, range(0xAC00, 0xAC40)),
        *map(chr, range(0x1F300, 0x1F340)),
        "\u200b",
        "\u0301",
        "\u3000",
    ]
    rng = random.Random(1234)
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert gpt2_tokenizer().encode(text) == reference_encode(text), repr(text)


def _rescan_clip_encoder():
    """SimpleTokenizer's algorithm (rescan the word after each rule), to check the heap-based BPE."""
    merges = clip_merges()
    ids = {token: token_id for token_id, token in enumerate(clip_vocabulary(merges))}
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    pieces = regex.compile(CLIP_PATTERN, regex.IGNORECASE)
    byte_symbols = byte_to_unicode()

    def encode(text: str) -> list[int]:
        result = []
        for piece in pieces.findall(clean_clip_text(text)):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                result.append(ids[piece])
                continue
            symbols = [byte_symbols[b] for b in piece.encode("utf-8")]
            symbols[-1] += "</w>"
            while len(symbols) > 1:
                ranked = [
                    (ranks[p], i)
                    for i, p in enumerate(zip(symbols[:-1], symbols[1:], strict=True))
                    if p in ranks
                ]
                if not ranked:
                    break
                best = min(ranked)[1]
                first, second = symbols[best], symbols[best + 1]
                merged, i = [], 0
                while i < len(symbols):
                    if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == (first, second):
                        merged.append(first + second)
                        i += 2
                    else:
                        merged.append(symbols[i])
                        i += 1
                symbols = merged
            result.extend(ids[symbol] for symbol in symbols)
        return result

    return encode


def test_clip_heap_bpe_agrees_with_rescanning_bpe():
    reference_encode = _rescan_clip_encoder()
    rng = random.Random(99)
    letters = "abcdefghijklmnopqrstuvwxyzéàöß한국一只"
    texts = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 400))) for _ in range(40)]
    texts += ["".join(rng.choice(letters + " .,!'0123456789") for _ in range(60)) for _ in range(300)]
    texts += ["aaaaaaaaaaaaaaaaaaaaaaa", "abababababababab ab", "mississippi's <|endoftext|>"]
    for text in texts:
        assert clip_tokenizer().encode(text) == reference_encode(text), repr(text)
