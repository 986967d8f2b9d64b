"""Benchmark prompts of an exact number of tokens, from the needle task's synthetic haystack.

The prompt is a needle-in-a-haystack prompt (:func:`windowkv.eval.needle.needle_example`: introduction,
licence-clean filler with a needle at half depth, question last; no chat template), which fills at
most ``length`` tokens with whole sentences; filler tokens of another haystack are put in front to make
exactly ``length``. The question stays last, so suffix-attention scorers see a realistic query, and
text classifiers see a question-answering prompt. The same ``(tokenizer, length, seed)`` always gives
the same ids.
"""

from __future__ import annotations

from typing import Any

import torch

from windowkv.eval.haystack import haystack_tokens
from windowkv.eval.needle import needle_example


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def bench_prompt(tokenizer: Any, length: int, seed: int = 0) -> torch.Tensor:
    """``[1, length]`` token ids (int64) of a needle prompt topped up with filler to exactly ``length``.

    A ``length`` below the shortest needle prompt (about 60 tokens of SmolLM2) gives filler alone.
    """
    if length < 1:
        raise ValueError(f"a prompt length must be positive (got {length})")
    try:
        ids = _ids(tokenizer, needle_example(tokenizer, length, 0.5, seed=seed).prompt)
    except ValueError:  # shorter than the needle prompt's frame: filler alone
        ids = []
    missing = length - len(ids)
    if missing > 0:
        filler: list[int] = []
        room = 2 * missing + 64  # whole sentences within ``room`` tokens: at least ``missing`` of them
        while len(filler) < missing:
            filler = _ids(tokenizer, haystack_tokens(tokenizer, room, seed=seed + 1) + "\n")
            room *= 2
        ids = filler[-missing:] + ids
    ids = ids[-length:]  # a tokenizer may merge differently in context: never more than asked
    if len(ids) != length:
        raise ValueError(f"could not build a prompt of {length} tokens (got {len(ids)})")
    return torch.tensor([ids], dtype=torch.long)
