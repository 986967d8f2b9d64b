"""Needle-in-a-haystack examples over a grid of prompt lengths (tokens) and needle depths.

The needle is ``"The special magic number for <city> is <7 digits>."``, hidden at a depth in
``[0, 1]`` (0: before the first filler sentence, 1: after the last) of the generated haystack
(:mod:`windowkv.eval.haystack`); the question comes last. Each example reports:

- ``needle_exact`` (primary): the 7 digits appear in the output;
- ``rouge1``: Rouge-1 F1 of the full reply (answer prefix + generated text) against the needle
  sentence, the paper's protocol (after PyramidKV), in ``[0, 1]``.

``Example.answer_prefix`` starts the assistant's turn with "The special magic number for <city>
mentioned in the provided text is", so even a 135M-parameter model answers with the number at once
(SmolLM2-135M-Instruct, full cache: 15/15 at 512-2048 tokens; without the prefix it first restates
the question, which takes about 20 tokens).
"""

from __future__ import annotations

import bisect
import random
from typing import Any, Sequence

from windowkv.eval.examples import Example
from windowkv.eval.haystack import count_tokens, fit_length, sentences, word_list

NEEDLE = "The special magic number for {key} is {value}."
INTRO = ("A special magic number is hidden within the following text. Make sure to memorize it. "
         "I will quiz you about the number afterwards.")
QUESTION = "What is the special magic number for {key} mentioned in the provided text?"
ANSWER_PREFIX = "The special magic number for {key} mentioned in the provided text is"
DEFAULT_LENGTHS = (512, 1024, 2048)
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def insert_at_depth(parts: Sequence[str], needle: str, depth: float) -> tuple[list[str], int]:
    """Insert ``needle`` between whole ``parts`` at the boundary closest to ``depth`` of the characters.

    Returns:
        The new list and the index of the needle in it.
    """
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must lie in [0, 1] (got {depth})")
    cumulative = [0]
    for part in parts:
        cumulative.append(cumulative[-1] + len(part) + 1)
    target = depth * cumulative[-1]
    k = bisect.bisect_left(cumulative, target)
    if k > 0 and (k == len(cumulative) or target - cumulative[k - 1] <= cumulative[k] - target):
        k -= 1
    return [*parts[:k], needle, *parts[k:]], k


def needle_prompt(context: str, key: str) -> str:
    """The user message: introduction, haystack with the needle, question."""
    return f"{INTRO}\n{context}\n{QUESTION.format(key=key)}"


def needle_example(tokenizer: Any, length: int, depth: float, *, seed: int = 0, index: int = 0,
                   max_new_tokens: int = 32, answer_prefix: bool = True) -> Example:
    """One needle prompt of at most ``length`` tokens (without chat template) with the needle at ``depth``.

    Args:
        tokenizer: the model's tokenizer; lengths are counted with it.
        length: the prompt's token budget; the haystack fills it with whole sentences.
        depth: where the needle goes, ``0`` (start) to ``1`` (end of the haystack).
        seed: seeds the key, the number and the haystack.
        index: the repetition of this ``(length, depth)`` cell (another key, number and haystack).
    """
    rng = random.Random(f"needle-{seed}-{index}-{length}-{depth:.4f}")
    key = rng.choice(word_list("cities"))
    value = str(rng.randint(1_000_000, 9_999_999))
    needle = NEEDLE.format(key=key, value=value)
    pool: list[str] = []
    stream = sentences(seed * 1000 + index)

    def build(n: int) -> str:
        while len(pool) < n:
            pool.append(next(stream))
        parts, _ = insert_at_depth(pool[:n], needle, depth)
        return needle_prompt(" ".join(parts), key)

    n, prompt, tokens = fit_length(build, tokenizer, length)
    # the share of the haystack's tokens that precede the needle (pieces counted apart: +-1 token)
    intro, question = count_tokens(tokenizer, INTRO), count_tokens(tokenizer, QUESTION.format(key=key))
    before = count_tokens(tokenizer, prompt[: prompt.index(needle)]) - intro
    token_depth = before / max(tokens - intro - question - count_tokens(tokenizer, needle), 1)
    suffix = f"-r{index}" if index else ""
    return Example(
        id=f"needle-L{length}-d{depth:.2f}-s{seed}{suffix}",
        task="needle",
        prompt=prompt,
        answers=[value],
        metric="needle_exact",
        max_new_tokens=max_new_tokens,
        meta={"length": length, "depth": depth, "needle": value, "key": key,
              "haystack_sentences": n, "needle_token_depth": round(min(max(token_depth, 0.0), 1.0), 4),
              "seed": seed, "index": index},
        extra_metrics=("rouge1",),
        references={"rouge1": [needle]},
        prompt_tokens=tokens,
        answer_prefix=ANSWER_PREFIX.format(key=key) if answer_prefix else "",
        length=length,
        depth=depth,
        score_with_prefix=answer_prefix,
    )


def needle_examples(tokenizer: Any, lengths: Sequence[int] = DEFAULT_LENGTHS,
                    depths: Sequence[float] = DEFAULT_DEPTHS, *, samples: int = 1, seed: int = 0,
                    max_new_tokens: int = 32, answer_prefix: bool = True) -> list[Example]:
    """The ``lengths x depths x samples`` grid of needle examples, lengths outermost.

    Each cell is generated independently from ``(seed, index, length, depth)``: adding a length or a
    depth to the grid leaves the other examples unchanged.
    """
    if tokenizer is None:
        raise ValueError("needle examples need the model's tokenizer (lengths are in its tokens)")
    if samples < 1:
        raise ValueError(f"samples must be >= 1 (got {samples})")
    return [needle_example(tokenizer, int(length), float(depth), seed=seed, index=i,
                           max_new_tokens=max_new_tokens, answer_prefix=answer_prefix)
            for length in lengths for depth in depths for i in range(samples)]
