"""Dataset classifier: the task label known from a dataset's name (the oracle of experiments).

LongBench (Bai et al., 2023, arXiv 2308.14508) groups its datasets into task families; WindowKV
(arXiv 2503.17922, Sec. 3.1) maps single- and multi-document QA and retrieval to *localisation*
(``qa``) and everything else to *aggregation* (``other``). windowkv's own needle and RULER tasks are
mapped the same way. Use it to measure a learned classifier against perfect labels::

    {"type": "dataset", "dataset": "gov_report"}     # every prompt of this run is "other"
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from pydantic import Field, field_validator

from windowkv.classifiers.base import TaskClassifier
from windowkv.classifiers.text import FAMILY_LABELS, Level, level_labels
from windowkv.run import TaskPrediction

DATASET_FAMILIES: dict[str, str] = {
    **dict.fromkeys(("narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh"), "single_doc_qa"),
    **dict.fromkeys(("hotpotqa", "2wikimqa", "musique", "dureader"), "multi_doc_qa"),
    **dict.fromkeys(("gov_report", "qmsum", "multi_news", "vcsum"), "summarisation"),
    **dict.fromkeys(("trec", "triviaqa", "samsum", "lsht"), "few_shot"),
    **dict.fromkeys(("passage_count", "cwe", "fwe"), "counting"),
    **dict.fromkeys(("passage_retrieval_en", "passage_retrieval_zh", "needle", "niah_single", "niah_multikey",
                     "niah_multivalue", "niah_multiquery", "vt"), "retrieval"),
    **dict.fromkeys(("lcc", "repobench-p"), "code_completion"),
}


def dataset_family(dataset: str) -> str:
    """The task family of a LongBench, RULER or windowkv task name (``longbench/``, ``ruler/`` prefixes
    and LongBench-E's ``_e`` suffix allowed)."""
    name = dataset.rsplit("/", 1)[-1]
    name = name[:-2] if name.endswith("_e") and name[:-2] in DATASET_FAMILIES else name
    if name not in DATASET_FAMILIES:
        import difflib

        close = difflib.get_close_matches(name, DATASET_FAMILIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {dataset!r}{hint}; known: {', '.join(DATASET_FAMILIES)}")
    return DATASET_FAMILIES[name]


class DatasetClassifier(TaskClassifier):
    """Gives every prompt the label of ``dataset``'s task family (``qa`` for QA and retrieval, ``other``
    for summaries, few-shot, code and counting), with confidence 1. Reads no text."""

    name: ClassVar[str] = "dataset"
    needs_text: ClassVar[bool] = False

    dataset: str = Field("needle", description="LongBench dataset or windowkv task (hotpotqa, gov_report, "
                         "longbench/lcc, ruler/vt, needle, ...).")
    level: Level = Field("task", description="task: qa/other; family: the seven LongBench task families.")

    @field_validator("dataset")
    @classmethod
    def _known(cls, value: str) -> str:
        dataset_family(value)
        return value

    def labels(self) -> tuple[str, ...]:
        return level_labels(self.level)

    def classify(self, prompts: Sequence[str | None]) -> list[TaskPrediction]:
        family = dataset_family(self.dataset)
        label = family if self.level == "family" else FAMILY_LABELS[family]
        return [TaskPrediction(label, 1.0) for _ in prompts]
