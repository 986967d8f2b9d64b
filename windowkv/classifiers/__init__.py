"""Task classifiers: prompt -> task label, which picks the policy's profile."""

from windowkv.classifiers.base import TaskClassifier
from windowkv.classifiers.fixed import FixedClassifier
from windowkv.classifiers.keyword import KeywordClassifier

__all__ = ["TaskClassifier", "FixedClassifier", "KeywordClassifier"]
