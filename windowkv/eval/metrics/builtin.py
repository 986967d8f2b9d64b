"""windowkv's built-in metrics as components (registered by ``windowkv.plugins.builtins``)."""

from __future__ import annotations

from windowkv.eval.metrics.base import Metric, function_metric
from windowkv.eval.metrics.functions import METRICS

DESCRIPTIONS = {
    "needle_exact": "the gold string appears in the prediction (case-insensitive); max over the answers",
    "rouge1": "Rouge-1 F1 (rouge_score tokens, unstemmed); max over the answers",
    "string_match_all": "RULER: the fraction of the answers found in the prediction",
    "string_match_part": "RULER: 1 if any answer is found in the prediction",
    "qa_f1": "LongBench/SQuAD token F1 after normalisation; max over the answers",
    "qa_f1_zh": "LongBench token F1 of Chinese words (jieba when installed)",
    "rouge_score": "LongBench: summary-level Rouge-L F of the rouge package",
    "rouge_zh": "LongBench: Rouge-L F of Chinese words",
    "classification_score": "LongBench: 1/k for k matched class names when the gold one is among them",
    "retrieval_score": "LongBench: share of the numbers in the prediction equal to the gold paragraph's",
    "retrieval_zh_score": "LongBench: as retrieval_score, for '段落N' answers",
    "count_score": "LongBench: share of the numbers in the prediction equal to the gold count",
    "code_sim_score": "LongBench: fuzzy ratio of the first code line to the gold line",
    "list_recall": "long answers: the share of the gold records found in the reply, in order",
    "list_exact": "long answers: 1 if the reply lists exactly the gold records in order",
}

#: the built-in metric classes, one per entry of :data:`windowkv.eval.metrics.functions.METRICS`
BUILTIN_METRICS: tuple[type[Metric], ...] = tuple(
    function_metric(name, fn, DESCRIPTIONS[name], needs_classes=name == "classification_score", module=__name__)
    for name, fn in METRICS.items()
)
globals().update({cls.__name__: cls for cls in BUILTIN_METRICS})  # importable: builtin.QaF1Metric
