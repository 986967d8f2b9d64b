"""A licence-clean haystack: deterministic, readable English filler generated from a seed.

The text comes from a small grammar of essay-like sentences shipped in ``windowkv/data/haystack.json``
(written for windowkv): topics such as gardens, bridges and workshops, plural throughout so verbs
agree, and no digits, so a numeric needle is the only number in the text. The same seed always
gives the same sentences. Lengths are measured in tokens of the model's tokenizer::

    text = haystack_tokens(tokenizer, 1000, seed=0)      # <= 1000 tokens of filler
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import deque
from importlib import resources
from typing import Any, Callable, Iterator

_SLOT = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=None)
def load_data(name: str) -> dict[str, Any]:
    """A JSON file of ``windowkv/data`` (``"haystack.json"``, ``"words.json"``), parsed once."""
    return json.loads((resources.files("windowkv") / "data" / name).read_text(encoding="utf-8"))


def word_list(kind: str) -> list[str]:
    """A word list of ``words.json``: ``"cities"``, ``"nouns"``, ``"adjectives"`` or ``"verbs"``."""
    words = load_data("words.json")
    if kind.startswith("_") or kind not in words:
        known = ", ".join(k for k in words if not k.startswith("_"))
        raise KeyError(f"unknown word list {kind!r}; known: {known}")
    return list(words[kind])


def _fill(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    text = _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), template)
    text = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # a -> an before a vowel
    return text[0].upper() + text[1:]


def sentences(seed: int = 0) -> Iterator[str]:
    """An endless, deterministic stream of filler sentences (no sentence repeats within 64 of itself)."""
    grammar = load_data("haystack.json")
    templates, slots = grammar["templates"], grammar["slots"]
    rng = random.Random(f"windowkv-haystack-{seed}")
    recent: deque[str] = deque(maxlen=64)
    while True:
        sentence = _fill(rng.choice(templates), slots, rng)
        if sentence in recent:
            continue
        recent.append(sentence)
        yield sentence


def haystack_sentences(count: int, seed: int = 0) -> list[str]:
    """The first ``count`` sentences of :func:`sentences`."""
    stream = sentences(seed)
    return [next(stream) for _ in range(count)]


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` without special tokens (the unit of every length in windowkv.eval)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_length(build: Callable[[int], str], tokenizer: Any, length: int, *, start: int = 16,
               limit: int = 1 << 22) -> tuple[int, str, int]:
    """The largest ``n >= 0`` whose ``build(n)`` fits in ``length`` tokens (tokens grow with ``n``).

    Doubles ``n`` from ``start`` until the text is too long, then bisects. ``build(0)`` is the
    smallest prompt a task can make; if even that is too long, a ``ValueError`` says so.

    Returns:
        ``(n, build(n), tokens of build(n))``.
    """
    base = build(0)
    base_tokens = count_tokens(tokenizer, base)
    if base_tokens > length:
        raise ValueError(f"length {length} is too short: the prompt without any filler already has "
                         f"{base_tokens} tokens")
    best = (0, base, base_tokens)
    lo, hi = 0, max(1, start)
    while hi <= limit:  # exponential search for a size that does not fit
        text = build(hi)
        tokens = count_tokens(tokenizer, text)
        if tokens > length:
            break
        best, lo, hi = (hi, text, tokens), hi, hi * 2
    else:
        return best
    while hi - lo > 1:
        mid = (lo + hi) // 2
        text = build(mid)
        tokens = count_tokens(tokenizer, text)
        if tokens <= length:
            best, lo = (mid, text, tokens), mid
        else:
            hi = mid
    return best


def haystack_tokens(tokenizer: Any, num_tokens: int, seed: int = 0) -> str:
    """The longest run of whole filler sentences that fits in ``num_tokens`` tokens."""
    pool: list[str] = []
    stream = sentences(seed)

    def build(n: int) -> str:
        while len(pool) < n:
            pool.append(next(stream))
        return " ".join(pool[:n])

    return fit_length(build, tokenizer, num_tokens)[1]
