"""The needle-in-a-haystack task as a component (the examples come from :mod:`windowkv.eval.needle`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from windowkv.eval.examples import Example
from windowkv.eval.needle import DEFAULT_DEPTHS, DEFAULT_LENGTHS, needle_examples
from windowkv.eval.tasks.base import Task


class NeedleTask(Task):
    """Needle in a haystack over lengths x depths, scored by exact match (primary) and Rouge-1."""

    name: ClassVar[str] = "needle"
    description: ClassVar[str] = "needle in a haystack over lengths x depths (exact match, Rouge-1)"

    answer_prefix: bool = Field(True, description="Start the reply with 'The special magic number for <city> "
                                                  "mentioned in the provided text is' (scored with the reply).")
    max_new_tokens: int = Field(32, ge=1, description="Tokens to generate per example.")

    def examples(self, *, tokenizer: Any, lengths: list[int] | None, depths: list[float] | None,
                 num_examples: int, seed: int) -> list[Example]:
        return needle_examples(tokenizer, lengths or DEFAULT_LENGTHS, DEFAULT_DEPTHS if depths is None else depths,
                               samples=num_examples, seed=seed, max_new_tokens=self.max_new_tokens,
                               answer_prefix=self.answer_prefix)
