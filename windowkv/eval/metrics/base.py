"""The contract of an evaluation metric: a prediction and its gold answers in, a score in ``[0, 1]`` out.

A metric is a component like a scorer: a frozen pydantic model registered through the
``windowkv_register_metrics`` hook, its parameters its fields. Tasks name their metric
(:attr:`windowkv.eval.Example.metric`); :func:`windowkv.eval.score_example` finds it in the registry.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

from windowkv.component import Component


class Metric(Component):
    """Base class of evaluation metrics.

    Subclasses set ``name`` and ``description`` and implement :meth:`score`. Metrics that need the
    label set of a classification task declare ``needs_classes = True`` and receive ``all_classes``.
    """

    kind: ClassVar[str] = "metric"
    description: ClassVar[str] = ""
    needs_classes: ClassVar[bool] = False

    def score(self, prediction: str, answers: Sequence[str], *, all_classes: Sequence[str] = ()) -> float:
        """The score of ``prediction`` against every gold answer (usually the best one), in ``[0, 1]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement score()")

    def __call__(self, prediction: str, answers: Sequence[str], **context: Any) -> float:
        """``score(...)``; ``context`` may carry ``all_classes`` (others are ignored), as the function table did."""
        classes = context.get("all_classes") or ()
        value = float(self.score(prediction, list(answers), all_classes=tuple(classes)))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"metric {self.name!r} returned {value}, outside [0, 1]")
        return value


def function_metric(name: str, fn: Callable[..., float], description: str, *, needs_classes: bool = False,
                    module: str = __name__) -> type[Metric]:
    """A :class:`Metric` class (no parameters) scoring with ``fn(prediction, answers, **context)``."""

    def score(self: Metric, prediction: str, answers: Sequence[str], *, all_classes: Sequence[str] = ()) -> float:
        context = {"all_classes": list(all_classes)} if needs_classes else {}
        return fn(prediction, answers, **context)

    title = "".join(part.capitalize() for part in name.split("_")) + "Metric"
    return type(title, (Metric,), {"__module__": module, "__doc__": description, "name": name,
                                   "description": description, "needs_classes": needs_classes, "score": score})
