"""A generated task whose answer is long: list every record of the context, in order, scored exactly.

Decode-time compression (:mod:`windowkv.policies.decode`) bounds the cache while the model writes a long
answer; this task shows what that costs: the answer is a copy of ``num_items`` records scattered through
filler text, so a cache that lost a record's keys while generating loses that line.

Example (``num_items=3``)::

    ... filler ... Record 1: the lantern code is 4821. ... filler ... Record 2: the harbor code is 0937. ...
    Question: Copy every record of the text above, in order, one per line, exactly as written.
    gold answer: "Record 1: the lantern code is 4821.\\nRecord 2: the harbor code is 0937.\\n..."

Scores (both exact, in ``[0, 1]``): ``list_recall`` (the primary metric), the fraction of gold records
written exactly in the prediction (spacing and case normalised), and ``list_exact``, 1 when the records
the prediction writes are exactly the gold records, in order. Generation is capped at ``tokens_per_item``
per record (a record line is about 13 tokens with SmolLM2's tokenizer), so 140 records is a
~2,000-token generation.
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

from windowkv.eval.examples import Example
from windowkv.eval.haystack import fit_length, sentences, word_list

TASK = "long/list_records"
TEMPLATE = ("The text below contains {n} numbered records, each giving a word and a code. Memorize them.\n"
            "{context}\nQuestion: Copy every record of the text above, in order, one per line, exactly as "
            "written (\"Record N: the WORD code is CODE.\"). Do not write anything else.")
ANSWER_PREFIX = "Record 1: the"


RECORD = re.compile(r"record \d+: the [a-z-]+ code is \d{4}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def list_recall(prediction: str, answers: Sequence[str], **_: Any) -> float:
    """The fraction of gold records (``answers``) written exactly in ``prediction`` (0 for no answers)."""
    if not answers:
        return 0.0
    text = _norm(prediction)
    return sum(1 for a in answers if _norm(a).rstrip(".") in text) / len(answers)


def list_exact(prediction: str, answers: Sequence[str], **_: Any) -> float:
    """1 when the records written in ``prediction`` are exactly the gold records, in order; else 0."""
    return float(RECORD.findall(_norm(prediction)) == [_norm(a).rstrip(".") for a in answers])


def _records(num_items: int, rng: random.Random) -> list[tuple[str, str]]:
    words = rng.sample(word_list("nouns"), num_items)
    return [(w, f"{rng.randrange(10_000):04d}") for w in words]


def list_records_example(tokenizer: Any, length: int, *, num_items: int = 20, seed: int = 0, index: int = 0,
                         tokens_per_item: int = 14, max_new_tokens: int | None = None) -> Example:
    """One example: ``num_items`` records spread evenly through ``length`` tokens of filler.

    Raises:
        ValueError: ``num_items`` < 1, more records than the word list holds, or the records alone
            exceed ``length`` tokens.
    """
    nouns = len(word_list("nouns"))
    if not 1 <= num_items <= nouns:
        raise ValueError(f"num_items must be in [1, {nouns}] (got {num_items})")
    rng = random.Random(f"{TASK}-{seed}-{index}-{length}-{num_items}")
    records = _records(num_items, rng)
    lines = [f"Record {i}: the {w} code is {c}." for i, (w, c) in enumerate(records, start=1)]
    filler = sentences(seed * 1000 + index)
    pool: list[str] = []

    def build(n: int) -> str:
        while len(pool) < n:
            pool.append(next(filler))
        parts: list[str] = []
        for i, line in enumerate(lines):  # record i after its share of the filler
            start, end = n * i // num_items, n * (i + 1) // num_items
            parts += pool[start:end] + [line]
        return TEMPLATE.format(n=num_items, context=" ".join(parts))

    n, prompt, tokens = fit_length(build, tokenizer, length)
    answers = lines
    return Example(
        id=f"list_records-L{length}-n{num_items}-s{seed}-i{index}", task=TASK, prompt=prompt, answers=answers,
        metric="list_recall", extra_metrics=("list_exact",),
        max_new_tokens=max_new_tokens or tokens_per_item * num_items,
        length=length, meta={"num_items": num_items, "seed": seed, "index": index},
        prompt_tokens=tokens, score_with_prefix=True,
        answer_prefix=ANSWER_PREFIX,
    )


def list_records_examples(tokenizer: Any, lengths: Sequence[int], *, samples: int = 1, seed: int = 0,
                          num_items: int = 20, tokens_per_item: int = 14,
                          max_new_tokens: int | None = None) -> list[Example]:
    """``samples`` examples per length (see :func:`list_records_example`)."""
    return [list_records_example(tokenizer, length, num_items=num_items, seed=seed, index=i,
                                 tokens_per_item=tokens_per_item, max_new_tokens=max_new_tokens)
            for length in lengths for i in range(samples)]
