"""The long-answer and multi-turn tasks as components (examples from :mod:`windowkv.eval.long_answer` and
:mod:`windowkv.eval.multiturn`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from windowkv.eval.examples import Example
from windowkv.eval.long_answer import TASK as LIST_RECORDS_TASK
from windowkv.eval.long_answer import list_records_examples
from windowkv.eval.multiturn import TASK as SCBENCH_KV_TASK
from windowkv.eval.multiturn import kv_examples
from windowkv.eval.tasks.base import Task
from windowkv.eval.tasks.ruler import DEFAULT_RULER_LENGTHS


class ListRecordsTask(Task):
    """Long answer: copy every record of the context in order, scored exactly (record recall, exact list)."""

    name: ClassVar[str] = LIST_RECORDS_TASK
    description: ClassVar[str] = ("long answer: copy every record of the context in order (exact record recall; "
                                  "num_items=..., 14 new tokens per record)")

    num_items: int = Field(20, ge=1, description="Records in the context (all of them are the answer).")
    tokens_per_item: int = Field(14, ge=1, description="New tokens allowed per record.")
    max_new_tokens: int | None = Field(None, ge=1, description="Tokens to generate (None: num_items x tokens_per_item).")

    def examples(self, *, tokenizer: Any, lengths: list[int] | None, num_examples: int, seed: int) -> list[Example]:
        return list_records_examples(tokenizer, lengths or DEFAULT_RULER_LENGTHS, samples=num_examples, seed=seed,
                                     num_items=self.num_items, tokens_per_item=self.tokens_per_item,
                                     max_new_tokens=self.max_new_tokens)


class ScbenchKvTask(Task):
    """SCBench-style keys in one context, one question per turn, asked query-aware (inside the prompt).

    ``windowkv multiturn`` runs the same examples as turns on one compressed context (query-agnostic).
    """

    name: ClassVar[str] = SCBENCH_KV_TASK
    description: ClassVar[str] = ("SCBench-style keys in one context, one question per turn (retrieval, multi-hop, "
                                  "aggregation); here query-aware, `windowkv multiturn` for one compressed context")

    num_keys: int = Field(4, ge=2, description="Key-value pairs in the context.")

    def examples(self, *, tokenizer: Any, lengths: list[int] | None, num_examples: int, seed: int) -> list[Example]:
        examples = kv_examples(tokenizer, lengths or DEFAULT_RULER_LENGTHS, samples=num_examples, seed=seed,
                               num_keys=self.num_keys)
        return [single for e in examples for single in e.as_single_turn()]
