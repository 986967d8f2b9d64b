"""The RULER-style synthetic tasks as components (the examples come from :mod:`windowkv.eval.ruler`).

Each task's options are RULER's parameters of that task; the defaults are RULER's configurations
(``synthetic.yaml``), see :mod:`windowkv.eval.ruler`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from windowkv.eval.examples import Example
from windowkv.eval.ruler import ruler_examples
from windowkv.eval.tasks.base import Task

DEFAULT_RULER_LENGTHS = (1024, 2048)
_MAX_NEW = Field(None, ge=1, description="Tokens to generate; default RULER's for the task.")


class RulerTask(Task):
    """Base of the RULER tasks: ``ruler_name`` is the key of :data:`windowkv.eval.ruler.RULER_TASKS`."""

    ruler_name: ClassVar[str] = ""
    max_new_tokens: int | None = _MAX_NEW

    def examples(self, *, tokenizer: Any, lengths: list[int] | None, num_examples: int, seed: int) -> list[Example]:
        return ruler_examples(self.ruler_name, tokenizer, lengths or DEFAULT_RULER_LENGTHS, samples=num_examples,
                              seed=seed, **self.model_dump())


class _Needles(RulerTask):
    haystack: Literal["essay", "noise", "needle"] = Field("essay", description="Filler: essays, repeated noise "
                                                                              "or distractor needles.")
    key_type: Literal["words", "numbers", "uuids"] = Field("words", description="What the keys are.")
    value_type: Literal["words", "numbers", "uuids"] = Field("numbers", description="What the values are.")
    num_keys: int = Field(1, ge=1, description="Needles with distinct keys.")
    num_values: int = Field(1, ge=1, description="Values per key.")
    num_queries: int = Field(1, ge=1, description="Keys asked for.")


class NiahSingleTask(_Needles):
    """RULER niah_single_2: one needle (word key, 7-digit value) in essays."""

    name: ClassVar[str] = "ruler/niah_single"
    ruler_name: ClassVar[str] = "niah_single"
    description: ClassVar[str] = "RULER single needle: essay haystack, word key, 7-digit value"


class NiahMultikeyTask(_Needles):
    name: ClassVar[str] = "ruler/niah_multikey"
    ruler_name: ClassVar[str] = "niah_multikey"
    description: ClassVar[str] = "RULER multi-key needle: 4 keys hidden, 1 asked"
    num_keys: int = Field(4, ge=1, description="Needles with distinct keys.")


class NiahMultivalueTask(_Needles):
    name: ClassVar[str] = "ruler/niah_multivalue"
    ruler_name: ClassVar[str] = "niah_multivalue"
    description: ClassVar[str] = "RULER multi-value needle: 1 key with 4 values"
    num_values: int = Field(4, ge=1, description="Values per key.")


class NiahMultiqueryTask(_Needles):
    name: ClassVar[str] = "ruler/niah_multiquery"
    ruler_name: ClassVar[str] = "niah_multiquery"
    description: ClassVar[str] = "RULER multi-query needle: 4 keys, all 4 asked"
    num_keys: int = Field(4, ge=1, description="Needles with distinct keys.")
    num_queries: int = Field(4, ge=1, description="Keys asked for.")


class VariableTrackingTask(RulerTask):
    name: ClassVar[str] = "ruler/vt"
    ruler_name: ClassVar[str] = "vt"
    description: ClassVar[str] = "RULER variable tracking: every variable that ends up holding a value"
    num_chains: int = Field(1, ge=1, description="Assignment chains in the text.")
    num_hops: int = Field(4, ge=1, description="Assignments per chain after the first.")
    fewshot: bool | None = Field(None, description="Prepend RULER's worked example; None: when it takes at "
                                                   "most a third of the length.")


class CommonWordsTask(RulerTask):
    name: ClassVar[str] = "ruler/cwe"
    ruler_name: ClassVar[str] = "cwe"
    description: ClassVar[str] = "RULER common words extraction: the 10 most common words of a list"
    num_cw: int = Field(10, ge=1, description="Common words to find.")
    freq_cw: int = Field(30, ge=1, description="Repetitions of a common word (4k tokens and up).")
    freq_ucw: int = Field(3, ge=1, description="Repetitions of an uncommon word (4k tokens and up).")
    fewshot: bool | None = Field(None, description="Prepend RULER's worked example; None: when it takes at "
                                                   "most a third of the length.")


class FrequentWordsTask(RulerTask):
    name: ClassVar[str] = "ruler/fwe"
    ruler_name: ClassVar[str] = "fwe"
    description: ClassVar[str] = "RULER frequent words extraction: the 3 most frequent coded words"
    alpha: float = Field(2.0, gt=1.0, description="Zeta distribution exponent of the word frequencies.")
    word_len: int = Field(6, ge=1, description="Letters per coded word.")
    vocab_size: int | None = Field(None, ge=4, description="Coded words; default length // 50 (at least 8).")


RULER_TASK_CLASSES: tuple[type[RulerTask], ...] = (NiahSingleTask, NiahMultikeyTask, NiahMultivalueTask,
                                                   NiahMultiqueryTask, VariableTrackingTask, CommonWordsTask,
                                                   FrequentWordsTask)
