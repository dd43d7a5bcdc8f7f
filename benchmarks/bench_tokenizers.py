"""Prints how long the tokenizers take to load and to tokenize short, long and odd prompts.

Run from the repository root: PYTHONPATH=. python benchmarks/bench_tokenizers.py (or after pip install -e .)
"""

from __future__ import annotations

import time

from glide_studio.models.tokenizers import (
    clip_tokenize_prompts,
    clip_tokenizer,
    gpt2_tokenizer,
    tokenize_prompts,
)

SHORT = "an oil painting of a corgi"
LONG = ("A richly detailed oil painting of a small corgi wearing a red scarf, café «naïve» 🐶 " * 60)[:5000]
ONE_HUGE_WORD = "a" * 5000
UNICODE = "한국어 프롬프트: 귀여운 강아지 그림 一只在草地上的柯基犬 ΟΔΟΣ İstanbul 👍🏽" * 40


def _seconds(action, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    start = time.perf_counter()
    gpt2_tokenizer()
    print(f"load GPT-2 tokenizer: {time.perf_counter() - start:8.3f} s")
    start = time.perf_counter()
    clip_tokenizer()
    print(f"load CLIP tokenizer:  {time.perf_counter() - start:8.3f} s")

    cases = {"short": SHORT, "5000 chars": LONG, "5000 x 'a'": ONE_HUGE_WORD, "unicode": UNICODE}
    for name, prompt in cases.items():
        gpt2_full = _seconds(lambda p=prompt: gpt2_tokenizer().encode(p), 20)
        gpt2_batch = _seconds(lambda p=prompt: tokenize_prompts([p]), 20)
        clip_full = _seconds(lambda p=prompt: clip_tokenizer().encode(p), 5)
        clip_batch = _seconds(lambda p=prompt: clip_tokenize_prompts([p]), 20)
        print(
            f"{name:>11} ({len(prompt):5d} chars): GPT-2 encode {gpt2_full * 1e3:7.2f} ms, "
            f"tokenize_prompts {gpt2_batch * 1e3:7.2f} ms | CLIP encode {clip_full * 1e3:7.2f} ms, "
            f"clip_tokenize_prompts {clip_batch * 1e3:7.2f} ms"
        )


if __name__ == "__main__":
    main()
