"""SCBench-style multi-turn task: one long context, several keys in it, one question per turn.

SCBench (Li et al., arXiv 2412.10319) measures KV-cache methods on a **shared context**: the context is
prefilled and compressed once, then several queries arrive one after another, so the compression cannot
know them (query-agnostic). ``scbench/kv`` is a generated version of its retrieval tasks:

- the context hides ``num_keys`` needles ``The value of key <adjective-noun> is <7 digits>.`` and one
  pointer ``Key <A> refers to key <B>.`` (B is one of the keys) in generated filler;
- turn kinds: ``retrieval`` (the value of one key), ``multi_hop`` (the value of the key a pointer
  refers to: two facts chained) and ``aggregation`` (the values of every key).

Every turn is scored with RULER's ``string_match_all`` (the fraction of gold values in the answer).

:func:`run_multiturn` answers the turns two ways: ``agnostic`` (one :class:`windowkv.Session`: the context
compressed alone, the questions appended turn by turn to the same cache, answers kept in the history)
and ``aware`` (each turn a fresh prompt, context + question, compressed with the question inside it,
the usual single-turn protocol). As a registered task (``windowkv eval scbench/kv``) the turns are
the ``aware`` single-turn examples; ``windowkv multiturn`` runs both.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from windowkv.errors import ConfigError
from windowkv.eval.examples import Example
from windowkv.eval.haystack import fit_length, sentences
from windowkv.eval.results import read_rows
from windowkv.eval.rows import ResultRow
from windowkv.eval.ruler import random_value

TASK = "scbench/kv"
INTRO = ("Below is a long text. Hidden in it are keys with their values, and one key that refers to another "
         "key. Memorize them: you will be asked about them.\n")
KINDS = ("retrieval", "multi_hop", "aggregation")


@dataclass(frozen=True)
class Turn:
    """One question of a multi-turn example.

    Attributes:
        question: the user message of the turn.
        answers: the gold values (scored with ``string_match_all``).
        kind: ``retrieval``, ``multi_hop`` or ``aggregation``.
        answer_prefix: text the answer starts with.
        max_new_tokens: generation length (tokens).
    """

    question: str
    answers: list[str]
    kind: str
    answer_prefix: str = ""
    max_new_tokens: int = 24


@dataclass(frozen=True)
class MultiTurnExample:
    """A shared context and its turns.

    Attributes:
        context_tokens: the context's length (tokens) as the builder counted it.
        meta: the task's own descriptive details (nothing windowkv does reads it).
    """

    id: str
    task: str
    context: str
    turns: list[Turn]
    meta: dict[str, Any] = field(default_factory=dict)
    context_tokens: int | None = None

    def as_single_turn(self) -> list[Example]:
        """Each turn as a query-aware example: context and question in one prompt."""
        return [Example(id=f"{self.id}-t{i}", task=self.task, prompt=f"{self.context}\n\n{t.question}",
                        answers=list(t.answers), metric="string_match_all", max_new_tokens=t.max_new_tokens,
                        meta={**self.meta, "turn": i, "kind": t.kind}, answer_prefix=t.answer_prefix)
                for i, t in enumerate(self.turns)]


def _turns(keys: list[str], values: list[str], pointer: str, target: int, rng: random.Random) -> list[Turn]:
    asked = rng.sample([i for i in range(len(keys)) if i != target], min(2, len(keys) - 1))
    turns = [Turn(f"What is the value of key {keys[i]}? Answer with the number only.", [values[i]], "retrieval",
                  f"The value of key {keys[i]} is") for i in asked]
    turns.append(Turn(f"Key {pointer} refers to another key. What is the value of that other key? Answer with "
                      "the number only.", [values[target]], "multi_hop", "The value is"))
    turns.append(Turn(f"List the values of all {len(keys)} keys in the text.", list(values), "aggregation",
                      "The values are:", max_new_tokens=12 * len(keys)))
    return turns


def kv_example(tokenizer: Any, length: int, *, num_keys: int = 4, seed: int = 0, index: int = 0) -> MultiTurnExample:
    """One ``scbench/kv`` example: ``num_keys`` keys and a pointer in ``length`` tokens of context.

    Raises:
        ValueError: ``num_keys`` < 2, or the needles alone exceed ``length`` tokens.
    """
    if num_keys < 2:
        raise ValueError(f"num_keys must be >= 2 (got {num_keys})")
    rng = random.Random(f"{TASK}-{seed}-{index}-{length}-{num_keys}")
    names: list[str] = []
    while len(names) < num_keys + 1:
        name = random_value("words", rng)
        if name not in names:
            names.append(name)
    keys, pointer = names[:num_keys], names[num_keys]
    values = [random_value("numbers", rng) for _ in keys]
    target = rng.randrange(num_keys)
    needles = [f"The value of key {k} is {v}." for k, v in zip(keys, values)]
    needles.insert(rng.randrange(len(needles) + 1), f"Key {pointer} refers to key {keys[target]}.")
    filler = sentences(seed * 7919 + index)
    pool: list[str] = []

    def build(n: int) -> str:
        while len(pool) < n:
            pool.append(next(filler))
        parts: list[str] = []
        for i, needle in enumerate(needles):  # needles spread evenly, the first after some filler
            start, end = n * i // len(needles), n * (i + 1) // len(needles)
            parts += pool[start:(start + end) // 2] + [needle] + pool[(start + end) // 2:end]
        return INTRO + " ".join(parts)

    n, context, tokens = fit_length(build, tokenizer, length)
    return MultiTurnExample(f"scbench_kv-L{length}-k{num_keys}-s{seed}-i{index}", TASK, context,
                            _turns(keys, values, pointer, target, rng),
                            {"length": length, "num_keys": num_keys, "seed": seed, "index": index},
                            context_tokens=tokens)


def kv_examples(tokenizer: Any, lengths: Sequence[int], *, samples: int = 1, seed: int = 0,
                num_keys: int = 4) -> list[MultiTurnExample]:
    """``samples`` examples per length."""
    return [kv_example(tokenizer, length, num_keys=num_keys, seed=seed, index=i)
            for length in lengths for i in range(samples)]


def run_multiturn(model: Any, tokenizer: Any, examples: Sequence[MultiTurnExample], variants: Sequence[Any],
                  out: str | Path, *, modes: Sequence[str] = ("agnostic", "aware"),
                  progress: Any = None) -> list[ResultRow]:
    """Answer every turn of ``examples`` under every variant and mode; append one row per turn to ``out``.

    Args:
        variants: :class:`windowkv.eval.variants.Variant` (policy x budget).
        out: a JSONL file; rows already there (same example, variant, mode, turn) are skipped. A line that
            is not a valid row is ignored with a warning (see :func:`windowkv.eval.results.read_rows`).
        modes: ``agnostic`` (one :class:`~windowkv.Session` per example) and/or ``aware``.

    Returns:
        Every row of ``out``.
    """
    from windowkv.eval.metrics import string_match_all

    bad = [m for m in modes if m not in ("agnostic", "aware")]
    if bad:
        raise ConfigError([("mode", f"unknown mode {bad[0]!r}; choose agnostic or aware")])
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = read_rows(path, repair=True)  # a truncated last line must not swallow the next row
    done = {(*r.key, r.mode, r.turn) for r in rows}
    with path.open("a") as sink:
        for variant in variants:
            for example in examples:
                for mode in modes:
                    if all((example.id, variant.label, variant.budget, mode, i) in done
                           for i in range(len(example.turns))):
                        continue
                    started = time.time()
                    answers = (_agnostic if mode == "agnostic" else _aware)(model, tokenizer, example, variant.policy)
                    for i, (turn, (prediction, kv_bytes)) in enumerate(zip(example.turns, answers)):
                        row = ResultRow(id=example.id, task=example.task, policy=variant.label,
                                        budget=variant.budget, mode=mode, turn=i, kind=turn.kind,
                                        score=string_match_all(prediction, turn.answers), prediction=prediction,
                                        answers=turn.answers, kv_bytes=kv_bytes,
                                        context_tokens=example.context_tokens,
                                        seconds=round(time.time() - started, 2))
                        sink.write(row.to_json() + "\n")
                        rows.append(row)
                    sink.flush()
                    if progress is not None:
                        progress(f"{variant.label} {example.id} {mode}")
    return rows


def _agnostic(model: Any, tokenizer: Any, example: MultiTurnExample, policy: Any) -> list[tuple[str, int]]:
    from windowkv.hf.session import Session

    out = []
    with Session(policy, model, tokenizer, context=example.context) as chat:
        for turn in example.turns:
            answer = chat.ask(turn.question, max_new_tokens=turn.max_new_tokens, answer_prefix=turn.answer_prefix)
            out.append((answer, chat.kv_nbytes()))
    return out


def _aware(model: Any, tokenizer: Any, example: MultiTurnExample, policy: Any) -> list[tuple[str, int]]:
    import torch

    from windowkv.eval.examples import render_prompt, uses_chat_template
    from windowkv.hf.session import cache_nbytes

    out = []
    with policy.apply(model, tokenizer):
        for single in example.as_single_turn():
            ids = tokenizer(render_prompt(tokenizer, single, warn=False), return_tensors="pt",
                            add_special_tokens=not uses_chat_template(tokenizer, single))["input_ids"]
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=single.max_new_tokens,
                                 do_sample=False, return_dict_in_generate=True,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            out.append((tokenizer.decode(gen.sequences[0, ids.shape[1]:], skip_special_tokens=True),
                        cache_nbytes(gen.past_key_values)))
    return out


def summary_table(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """Mean score per (policy, budget, mode, turn kind) and per turn index (rows without a score: none)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r.score is None or r.mode is None:  # not a scored turn of windowkv multiturn
            continue
        for key in ((r.policy, r.budget, r.mode, f"turn {r.turn} ({r.kind})"),
                    (r.policy, r.budget, r.mode, "all turns")):
            groups.setdefault(key, []).append(r.score)
    return [{"policy": p, "budget": b, "mode": m, "turns": t, "n": len(v), "score": sum(v) / len(v)}
            for (p, b, m, t), v in sorted(groups.items())]
