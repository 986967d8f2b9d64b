"""Evaluation metrics: the :class:`Metric` contract, the built-in metric functions, scoring an example.

Metrics are registered components (``windowkv_register_metrics``); :func:`get_metric` finds one by name
in the registry, built-ins and plugins alike. :data:`METRICS` is the table of built-in functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from windowkv.eval.metrics.functions import *  # noqa: F403  (the built-in functions stay importable here)
from windowkv.eval.metrics.functions import HAS_JIEBA, METRICS, POSTPROCESS, fuzz_ratio, postprocess
from windowkv.eval.metrics.base import Metric, function_metric  # after the star import: the class wins

if TYPE_CHECKING:
    from windowkv.eval.examples import Example
    from windowkv.registry import Registries


def get_metric(name: str, registries: Registries | None = None) -> Metric:
    """The registered metric ``name`` (default parameters), callable as ``metric(prediction, answers)``.

    Raises:
        UnknownComponentError: (a ``KeyError``) listing the registered metrics with a suggestion.
    """
    from windowkv.plugins import default_registries

    return (registries or default_registries())["metric"].get(name)()


def score_example(example: Example, prediction: str, registries: Registries | None = None) -> dict[str, float]:
    """Every metric of ``example`` (:attr:`Example.metrics`) for one prediction, in ``[0, 1]``.

    ``example.postprocess`` (see :func:`postprocess`) is applied first; with ``example.score_with_prefix``
    the answer prefix is put back in front of the prediction (the full assistant reply, as the needle
    protocol scores it); ``example.all_classes`` is given to the metrics (LongBench classification).
    """
    text = postprocess(prediction, example.postprocess)
    if example.score_with_prefix and example.answer_prefix:
        text = example.answer_prefix.strip() + text
    return {name: get_metric(name, registries)(text, example.gold(name), all_classes=example.all_classes)
            for name in example.metrics}


__all__ = ["HAS_JIEBA", "METRICS", "POSTPROCESS", "Metric", "function_metric", "fuzz_ratio", "get_metric",
           "postprocess", "score_example"]
