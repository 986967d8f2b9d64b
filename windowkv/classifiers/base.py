"""The task-classifier contract: prompt text -> task label (which selects a profile)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Sequence

from windowkv.component import Component
from windowkv.run import TaskPrediction


class TaskClassifier(Component):
    """Reads prompts and predicts their task label, e.g. ``"qa"`` or ``"other"``.

    The label picks the policy's profile (selector and suffix size); the mapping is configuration.
    A classifier that loads a model does so lazily, behind this contract.
    """

    kind: ClassVar[str] = "classifier"

    #: Whether :meth:`classify` reads the prompt text (then ``apply()`` needs a tokenizer or texts).
    needs_text: ClassVar[bool] = True

    def __call__(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        predictions = list(self.classify(prompts))
        if len(predictions) != len(prompts):
            raise ValueError(
                f"classifier {self.name!r} returned {len(predictions)} predictions for {len(prompts)} prompts"
            )
        unknown = {p.label for p in predictions} - set(self.labels())
        if unknown:
            raise ValueError(f"classifier {self.name!r} returned labels {sorted(unknown)} not in {self.labels()}")
        return predictions

    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Every label :meth:`classify` can return."""

    @abstractmethod
    def classify(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        """One prediction per prompt (``None`` when the text is unavailable and not needed)."""
