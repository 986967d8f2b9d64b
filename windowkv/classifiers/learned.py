"""The shared part of the learned classifiers (``embedding``, ``encoder``): input checks, fallbacks, levels.

A subclass computes class probabilities for non-empty prompt texts; this base checks the prompts
(``None`` is an error, empty text the logged fallback), warns once about non-English text, and
turns family probabilities into task labels (``qa``/``other``) or family labels (``level``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

from pydantic import Field

from windowkv.classifiers.base import TaskClassifier
from windowkv.classifiers.text import (
    Level,
    check_texts,
    empty_prediction,
    level_labels,
    mean_probs_to_level,
    warn_if_not_english,
)
from windowkv.run import TaskPrediction


class LearnedClassifier(TaskClassifier):
    """A classifier with trained weights: ``level`` picks task or family labels."""

    level: Level = Field("task", description="task: qa/other; family: the seven LongBench task families.")
    device: str = Field("cpu", description="Device of the encoder.")

    def labels(self) -> tuple[str, ...]:
        return level_labels(self.level)

    @abstractmethod
    def probabilities(self, texts: Sequence[str]) -> tuple[Any, Sequence[str], int]:
        """``(probs [N, C], class names, characters read at each end)`` for non-empty ``texts``."""

    def classify(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        usable = check_texts(prompts, self.name)
        texts = [p for p, ok in zip(prompts, usable) if ok]
        out = [empty_prediction(self.level)] * len(prompts)
        if not texts:
            return out
        probs, classes, edge_chars = self.probabilities(texts)
        for text in texts:
            warn_if_not_english(text[:edge_chars] + text[-edge_chars:], self.name)
        predictions = iter(mean_probs_to_level(probs, classes, self.level))
        return [next(predictions) if ok else p for p, ok in zip(out, usable)]
