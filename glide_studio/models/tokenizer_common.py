"""Pieces shared by the GLIDE (GPT-2) and CLIP tokenizers: the error type, input checks, the byte alphabet."""

from __future__ import annotations

import functools


class TokenizerError(ValueError):
    """Raised for input a tokenizer cannot take (not a string, bad token ids, missing vocabulary)."""


def checked_text(text: object) -> str:
    """Return `text` as a str that is valid UTF-8.

    OpenAI's tokenizers crash on lone surrogates (they call str.encode("utf-8")); we replace each one
    with U+FFFD instead so that any Python string can be tokenized.
    """
    if not isinstance(text, str):
        raise TokenizerError(f"a prompt must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def checked_ids(ids: object, vocab_size: int) -> list[int]:
    """Return `ids` as a list of ints in [0, vocab_size), or raise TokenizerError."""
    if isinstance(ids, (str, bytes)):
        raise TokenizerError("token ids must be a sequence of ints, got a string")
    try:
        values = [int(i) for i in ids]  # type: ignore[union-attr]
    except (TypeError, ValueError) as error:
        raise TokenizerError(f"token ids must be a sequence of ints: {error}") from None
    for value in values:
        if not 0 <= value < vocab_size:
            raise TokenizerError(f"token id {value} is outside the vocabulary [0, {vocab_size})")
    return values


def checked_ctx(ctx: object, minimum: int) -> int:
    if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < minimum:
        raise TokenizerError(f"context length must be an int >= {minimum}, got {ctx!r}")
    return ctx


@functools.lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (shared by CLIP).

    Printable Latin-1 bytes stand for themselves; the other bytes take the code points from 256 on,
    in byte order, so that no BPE symbol is whitespace or a control character.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1),
        *range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1),
    ]
    mapping = {byte: chr(byte) for byte in printable}
    next_code_point = 256
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(next_code_point)
            next_code_point += 1
    return mapping


def unicode_to_byte() -> dict[str, int]:
    return {char: byte for byte, char in byte_to_unicode().items()}
