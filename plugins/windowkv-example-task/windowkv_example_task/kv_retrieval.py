"""Key-value retrieval (Liu et al., "Lost in the Middle", arXiv 2307.03172, Sec. 3): a JSON object of random
keys and values fills the prompt; the model is asked for the value of one key, placed at a chosen depth.

A budget that evicts the asked pair loses the answer: every pair looks alike, so only attention from the
question can tell which one to keep.
"""

from __future__ import annotations

import json
import random
from typing import Any, ClassVar, Sequence

from pydantic import Field

from windowkv.eval import Example
from windowkv.eval.haystack import fit_length
from windowkv.eval.metrics import Metric
from windowkv.eval.tasks import Task

PROMPT = ("Extract the value corresponding to the specified key in the JSON object below.\n\n{data}\n\n"
          "Key: \"{key}\"\nCorresponding value:")


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("abcdef0123456789") for _ in range(length))


class KVRetrievalTask(Task):
    """Retrieve the value of one key from a JSON object that fills the prompt."""

    name: ClassVar[str] = "kv_retrieval"
    description: ClassVar[str] = "the value of one key in a JSON object of random pairs (Lost in the Middle)"

    key_length: int = Field(8, ge=4, le=32, description="Characters of every key and value.")
    depth: float = Field(0.5, ge=0.0, le=1.0, description="Where the asked pair sits in the object (0: first).")
    max_new_tokens: int = Field(16, ge=1, description="Tokens to generate.")

    def examples(self, *, tokenizer: Any, lengths: Sequence[int] | None, num_examples: int,
                 seed: int) -> list[Example]:
        out = []
        for length in lengths or (512,):
            for index in range(num_examples):
                out.append(self._example(tokenizer, int(length), seed, index))
        return out

    def _example(self, tokenizer: Any, length: int, seed: int, index: int) -> Example:
        rng = random.Random(f"kv-{seed}-{index}-{length}")
        pool = [(_token(rng, self.key_length), _token(rng, self.key_length)) for _ in range(4096)]
        chosen: dict[int, tuple[str, str, str]] = {}

        def build(n: int) -> str:
            pairs = pool[:n + 1]
            asked = pairs[0]
            rest = pairs[1:]
            at = round(self.depth * len(rest))
            ordered = [*rest[:at], asked, *rest[at:]]
            text = PROMPT.format(data=json.dumps(dict(ordered), indent=0), key=asked[0])
            chosen[n] = (text, *asked)
            return text

        n, prompt, tokens = fit_length(build, tokenizer, length)
        _, key, value = chosen[n]
        return Example(id=f"kv-L{length}-d{self.depth:.2f}-s{seed}-i{index}", task=self.name, prompt=prompt,
                       answers=[value], metric="value_exact", max_new_tokens=self.max_new_tokens,
                       meta={"key": key, "pairs": n + 1}, prompt_tokens=tokens, length=length,
                       depth=self.depth)


class ValueExactMetric(Metric):
    """1 when the first word of the prediction (quotes and punctuation stripped) is a gold answer."""

    name: ClassVar[str] = "value_exact"
    description: ClassVar[str] = "the first word of the prediction is the gold value"

    case_sensitive: bool = Field(False, description="Compare with case.")

    def score(self, prediction: str, answers: Sequence[str], *, all_classes: Sequence[str] = ()) -> float:
        words = prediction.split()
        first = words[0].strip("\"'.,;:") if words else ""
        if not self.case_sensitive:
            first, answers = first.lower(), [a.lower() for a in answers]
        return float(first in answers)
