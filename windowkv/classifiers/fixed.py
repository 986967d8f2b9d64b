"""Fixed classifier: every prompt gets the same label (e.g. a task known per dataset)."""

from __future__ import annotations

from typing import ClassVar, Sequence

from pydantic import Field

from windowkv.classifiers.base import TaskClassifier
from windowkv.run import TaskPrediction
from windowkv.component import NAME_PATTERN


class FixedClassifier(TaskClassifier):
    """Always answers ``label`` with confidence 1."""

    name: ClassVar[str] = "fixed"
    needs_text: ClassVar[bool] = False

    label: str = Field("qa", pattern=NAME_PATTERN.pattern, description="The label given to every prompt.")

    def labels(self) -> tuple[str, ...]:
        return (self.label,)

    def classify(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        return [TaskPrediction(self.label, 1.0) for _ in prompts]
