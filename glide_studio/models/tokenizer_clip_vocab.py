"""CLIP's BPE vocabulary, shipped as package data (``glide_studio/models/data``, with its MIT licence).

The file is OpenAI's ``bpe_simple_vocab_16e6.txt``, gzipped; its uncompressed bytes are checked against the
SHA-256 of OpenAI's file, so a damaged or replaced copy fails loudly instead of tokenizing differently. It
used to be read out of the `instant-clip-tokenizer` package, which has no wheel for Python 3.13.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from functools import lru_cache
from importlib import resources

from glide_studio.models.tokenizer_common import TokenizerError, byte_to_unicode

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_OPENAI_VOCAB_SIZE_BYTES = 3_194_984
_OPENAI_VOCAB_SHA256 = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"
# SimpleTokenizer keeps the first 49152 - 256 - 2 merge lines; with 2 x 256 byte symbols and the
# 2 specials that makes the 49408 ids.
CLIP_MERGE_COUNT = 49152 - 256 - 2
CLIP_SPECIAL_TEXTS = ("<|startoftext|>", "<|endoftext|>")


@lru_cache(maxsize=1)
def _read_openai_vocab_file() -> str:
    source = resources.files("glide_studio.models") / "data" / VOCAB_FILE
    try:
        text = gzip.decompress(source.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise TokenizerError(f"cannot read the CLIP vocabulary {source}: {error}; reinstall GLIDE Studio") from None
    if len(text) != _OPENAI_VOCAB_SIZE_BYTES or hashlib.sha256(text).hexdigest() != _OPENAI_VOCAB_SHA256:
        raise TokenizerError(
            f"{source} is not OpenAI's bpe_simple_vocab_16e6.txt (its SHA-256 differs): the installation is "
            "damaged; reinstall GLIDE Studio"
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
