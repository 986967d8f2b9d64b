"""The dataset (oracle) classifier: LongBench / RULER / needle names to the paper's labels."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from windowkv.classifiers import DatasetClassifier
from windowkv.eval.longbench import LONGBENCH_DATASETS
from windowkv.testing import check_classifier_contract


@pytest.mark.parametrize("dataset, label", [
    ("hotpotqa", "qa"), ("longbench/narrativeqa", "qa"), ("passage_retrieval_en", "qa"), ("needle", "qa"),
    ("ruler/vt", "qa"), ("gov_report", "other"), ("qmsum_e", "other"), ("triviaqa", "other"), ("lcc", "other"),
    ("repobench-p", "other"), ("passage_count", "other"), ("ruler/cwe", "other"),
])
def test_dataset_labels(dataset, label):
    classifier = DatasetClassifier(dataset=dataset)
    assert [p.label for p in classifier([None, "text"])] == [label, label]
    check_classifier_contract(classifier)


def test_every_longbench_dataset_has_a_family():
    for name in LONGBENCH_DATASETS:
        DatasetClassifier(dataset=name, level="family")


def test_unknown_dataset_is_refused_with_a_suggestion():
    with pytest.raises(ValidationError, match="did you mean 'hotpotqa'"):
        DatasetClassifier(dataset="hotpotq")
