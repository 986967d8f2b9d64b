"""Keyword classifier: a transparent heuristic telling localisation (QA, retrieval) from aggregation.

WindowKV (arXiv 2503.17922, Sec. 3.1) classifies prompts into information *localisation* (single- and
multi-document QA, retrieval: the answer sits in a few tokens) and *aggregation* (summaries, few-shot,
code: the answer draws on the whole context). This classifier looks for cue phrases in the prompt's
instruction, which sits at its start and end; it needs no model.
"""

from __future__ import annotations

import re
from typing import ClassVar, Sequence

from pydantic import Field

from windowkv.classifiers.base import TaskClassifier
from windowkv.run import TaskPrediction

QA_CUES = (
    r"\?", r"\bquestion\b", r"\banswer\b", r"\bwhat\b", r"\bwho\b", r"\bwhen\b", r"\bwhere\b",
    r"\bwhich\b", r"\bhow (many|much|old|long)\b", r"\bfind\b", r"\bretriev", r"\blook ?up\b",
    r"\bpass ?key\b", r"\bneedle\b", r"\bmagic number\b", r"\bspecial .* number\b", r"\bvalue of\b",
    r"\bparagraph\b.*\bfrom\b", r"\bis the\b.*\bof\b",
)
AGGREGATION_CUES = (
    r"\bsummar", r"\bsummary\b", r"\boverview\b", r"\bcomplete the code\b", r"\bnext line of code\b",
    r"\bcount\b", r"\bhow many (unique|distinct|different)\b", r"\bclassify\b", r"\bcategor",
    r"\bfew[- ]shot\b", r"\bexamples?\b", r"\bmost (common|frequent)\b", r"\blist all\b",
    r"\bwrite a\b", r"\btranslat",
)


def _count(patterns: Sequence[str], text: str) -> int:
    return sum(1 for p in patterns if re.search(p, text, flags=re.IGNORECASE))


class KeywordClassifier(TaskClassifier):
    """Labels a prompt ``qa_label`` when its instruction holds more QA cues than aggregation cues.

    Only the first and last ``edge_chars`` characters are read (instructions sit there; the context
    in between would add noise). Ties go to ``other_label``. Confidence is the cue margin, squashed
    into ``[0.5, 1)``.
    """

    name: ClassVar[str] = "keyword"

    qa_label: str = Field("qa", description="Label for localisation prompts (QA, retrieval).")
    other_label: str = Field("other", description="Label for aggregation prompts (summaries, code, ...).")
    edge_chars: int = Field(600, ge=1, description="Characters read at each end of the prompt.")

    def labels(self) -> tuple[str, ...]:
        return (self.qa_label, self.other_label)

    def classify(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        out = []
        for prompt in prompts:
            if prompt is None:
                raise ValueError(
                    "the keyword classifier needs the prompt text: pass tokenizer= (or task=) to apply()"
                )
            text = prompt if len(prompt) <= 2 * self.edge_chars else (
                prompt[: self.edge_chars] + "\n" + prompt[-self.edge_chars :]
            )
            margin = _count(QA_CUES, text) - _count(AGGREGATION_CUES, text)
            label = self.qa_label if margin > 0 else self.other_label
            out.append(TaskPrediction(label, 1.0 - 0.5 / (1 + abs(margin))))
        return out
