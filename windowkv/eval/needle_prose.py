"""Needle in real prose: a 7-digit needle hidden in State of the Union addresses that have numbers of their own.

The hard setting is the default, as a user of a standard needle test would run it: the question is
inside the compressed prompt, the model is asked for the number only, and no answer prefix starts its
reply. The haystack (:mod:`windowkv.eval.prose`, public domain) holds its own numbers and dates, so the
needle is not the only number; :mod:`windowkv.eval.needle`'s generated haystack stays as the easy
control.

Options (``windowkv eval needle_prose --option`` style keywords of :func:`needle_prose_examples`):

- ``question``: ``"inside"`` (default: the question ends the user message and is compressed with it,
  so a policy's suffix sees it) or ``"after"`` (the prompt up to the question is compressed alone, then
  the question is appended to the compressed cache: a query-agnostic test);
- ``answer_prefix``: ``False`` (default) or ``True`` (the reply starts with "The special magic number
  for <city> mentioned in the provided text is", and the full reply is scored);
- ``source``: ``"sotu"`` (default: every address, in an order drawn from the seed), one address id
  (``"1910-Taft-1"``) or a plain-text file.

Scores: ``needle_exact`` (the 7 digits as a whole digit run in the reply) and ``rouge1`` against the
needle sentence. ``meta`` records the needle's and the question's character offsets in the prompt
(``needle_chars``, ``question_chars``) so tools can find their tokens (:func:`char_span_tokens`).
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from windowkv.errors import WindowKVError
from windowkv.eval.examples import Example
from windowkv.eval.haystack import count_tokens, fit_length, word_list
from windowkv.eval.needle import ANSWER_PREFIX, INTRO, NEEDLE, QUESTION, insert_at_depth
from windowkv.eval.prose import SOTU, HaystackSourceError, Unit, join_units, prose_units

TASK = "needle_prose"


class NeedleProseError(WindowKVError, ValueError):
    """A needle_prose prompt that cannot be built as asked (the message says why and what would work)."""


QUESTION_POSITIONS = ("inside", "after")
ASK = QUESTION + " Answer with the number only."
DEFAULT_LENGTHS = (1024, 2048, 4096)
DEFAULT_DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)


def token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every token of ``text`` (no special tokens added).

    Raises:
        ValueError: the tokenizer cannot report offsets (a slow tokenizer).
    """
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise NeedleProseError(f"the tokenizer cannot map tokens to characters (needs a fast tokenizer): {exc}") from None
    return [tuple(o) for o in enc["offset_mapping"]]


def char_span_tokens(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """The tokens ``[first, last)`` that cover the characters ``[start, end)``."""
    first = next((i for i, (_, e) in enumerate(offsets) if e > start), len(offsets))
    last = next((i for i, (s, _) in enumerate(offsets) if s >= end), len(offsets))
    return first, max(first, last)


def token_boundary(offsets: Sequence[tuple[int, int]], char: int) -> int | None:
    """The index of the first token at or after ``char``; None when a token straddles ``char``."""
    for i, (s, e) in enumerate(offsets):
        if s >= char:
            return i
        if e > char:
            return None
    return len(offsets)


def check_boundaries(tokenizer: Any, prompt: str, needle_chars: tuple[int, int], question_chars: int,
                     question: str) -> None:
    """Refuse a prompt whose needle or context tokenises across the question boundary.

    Raises:
        ValueError: the needle's last token runs into the question, or (``question="after"``) no token
            boundary separates the context from the question.
    """
    offsets = token_offsets(tokenizer, prompt)
    first, last = char_span_tokens(offsets, *needle_chars)
    if last > first and offsets[last - 1][1] > question_chars:
        raise NeedleProseError(f"the needle tokenises across the question boundary: its last token "
                         f"{prompt[slice(*offsets[last - 1])]!r} also holds the start of the question; "
                         f"use a depth below 1.0")
    if question == "after" and token_boundary(offsets, question_chars) is None:
        raise NeedleProseError("question='after' needs a token boundary between the context and the question, "
                         f"but a token straddles character {question_chars} of the prompt")


def needle_prose_example(tokenizer: Any, length: int, depth: float, *, seed: int = 0, index: int = 0,
                         max_new_tokens: int = 24, question: str = "inside", answer_prefix: bool = False,
                         source: str = SOTU) -> Example:
    """One real-prose needle prompt of at most ``length`` tokens (without chat template).

    Args:
        tokenizer: the model's tokenizer (fast: needle and question offsets are checked on its tokens).
        length: the user message's token budget; whole sentences of prose fill it.
        depth: where the needle goes, ``0`` (before the first sentence) to ``1`` (after the last).
        seed: seeds the key, the number and the order of the addresses.
        index: the repetition of this cell (another key and number, the prose of the next seed).
        question: ``"inside"`` or ``"after"`` (see the module docstring).
        answer_prefix: start the reply with the answer prefix (and score it with the reply).
        source: ``"sotu"``, an address id or a text file.

    Raises:
        ValueError: an unknown ``question``, a depth outside ``[0, 1]``, a source too short for
            ``length`` (naming the length it can give), or a needle tokenising across the question.
    """
    if question not in QUESTION_POSITIONS:
        raise NeedleProseError(f"question must be one of {', '.join(QUESTION_POSITIONS)} (got {question!r})")
    if not 0.0 <= depth <= 1.0:
        raise NeedleProseError(f"depth must lie in [0, 1] (got {depth})")
    rng = random.Random(f"needle-prose-{seed}-{index}-{length}-{depth:.4f}")
    key = rng.choice(word_list("cities"))
    value = str(rng.randint(1_000_000, 9_999_999))
    needle = NEEDLE.format(key=key, value=value)
    ask = ASK.format(key=key)
    text_seed = seed * 1000 + index
    pool: list[Unit] = []
    exhausted = False

    def build(n: int) -> str:
        nonlocal pool, exhausted
        if len(pool) < n and not exhausted:
            pool = prose_units(source, text_seed, limit=max(n, 2 * len(pool)))
            exhausted = len(pool) < n
        units = pool[:n]
        parts, k = insert_at_depth([u.text for u in units], needle, depth)
        flags = [u.paragraph for u in units]
        flags.insert(k, False)
        return f"{INTRO}\n\n{join_units([Unit(t, f) for t, f in zip(parts, flags)])}\n\n{ask}"

    n, prompt, tokens = fit_length(build, tokenizer, length)
    if exhausted and n >= len(pool):
        raise HaystackSourceError(f"haystack source {source!r} is too short for length {length}: it gives at most "
                         f"{tokens} tokens with this needle and question")
    needle_start = prompt.index(needle)
    needle_chars = (needle_start, needle_start + len(needle))
    question_chars = len(prompt) - len(ask) - 2  # the blank line before the question belongs to it
    check_boundaries(tokenizer, prompt, needle_chars, question_chars, question)
    intro, asked = count_tokens(tokenizer, INTRO), count_tokens(tokenizer, ask)
    before = count_tokens(tokenizer, prompt[:needle_start]) - intro
    token_depth = before / max(tokens - intro - asked - count_tokens(tokenizer, needle), 1)
    tags = f"-r{index}" if index else ""
    tags += "-qafter" if question == "after" else ""
    tags += "-prefix" if answer_prefix else ""
    return Example(
        id=f"{TASK}-L{length}-d{depth:.2f}-s{seed}{tags}",
        task=TASK,
        prompt=prompt,
        answers=[value],
        metric="needle_exact",
        max_new_tokens=max_new_tokens,
        meta={"length": length, "depth": depth, "needle": value, "key": key,
              "haystack_sentences": n, "needle_token_depth": round(min(max(token_depth, 0.0), 1.0), 4),
              "needle_chars": list(needle_chars), "question_chars": question_chars, "question": question,
              "source": source, "seed": seed, "index": index},
        prompt_tokens=tokens,
        length=length,
        depth=depth,
        score_with_prefix=answer_prefix,
        context_chars=question_chars if question == "after" else None,
        extra_metrics=("rouge1",),
        references={"rouge1": [needle]},
        answer_prefix=ANSWER_PREFIX.format(key=key) if answer_prefix else "",
    )


def needle_prose_examples(tokenizer: Any, lengths: Sequence[int] = DEFAULT_LENGTHS,
                          depths: Sequence[float] = DEFAULT_DEPTHS, *, samples: int = 1, seed: int = 0,
                          max_new_tokens: int = 24, question: str = "inside", answer_prefix: bool = False,
                          source: str = SOTU) -> list[Example]:
    """The ``lengths x depths x samples`` grid, lengths outermost; each cell independent of the others."""
    if tokenizer is None:
        raise NeedleProseError("needle_prose examples need the model's tokenizer (lengths are in its tokens)")
    if samples < 1:
        raise NeedleProseError(f"samples must be >= 1 (got {samples})")
    return [needle_prose_example(tokenizer, int(length), float(depth), seed=seed, index=i,
                                 max_new_tokens=max_new_tokens, question=question, answer_prefix=answer_prefix,
                                 source=source)
            for length in lengths for depth in depths for i in range(samples)]


def context_tokens(tokenizer: Any, text: str, example: Example) -> int | None:
    """For ``question="after"``: how many tokens of the rendered ``text`` precede the question.

    The runner compresses those tokens alone, then appends the rest (question, chat-template end, answer
    prefix) to the compressed cache. None for any other example.

    Raises:
        ValueError: the rendered text does not hold the prompt verbatim, or a token straddles the boundary.
    """
    if example.context_chars is None:
        return None
    start = text.find(example.prompt)
    if start < 0:
        raise NeedleProseError(f"{example.id}: the rendered prompt does not contain the user message verbatim")
    boundary = token_boundary(token_offsets(tokenizer, text), start + example.context_chars)
    if boundary is None:
        raise NeedleProseError(f"{example.id}: a token of the rendered prompt straddles the question boundary")
    return boundary
