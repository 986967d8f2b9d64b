"""Task classifiers: prompt -> task label, which picks the policy's profile."""

from windowkv.classifiers.base import TaskClassifier
from windowkv.classifiers.dataset import DatasetClassifier
from windowkv.classifiers.embedding import EmbeddingClassifier
from windowkv.classifiers.encoder import EncoderClassifier
from windowkv.classifiers.fixed import FixedClassifier
from windowkv.classifiers.keyword import KeywordClassifier
from windowkv.classifiers.text import ClassifierLoadError

__all__ = ["TaskClassifier", "ClassifierLoadError", "DatasetClassifier", "EmbeddingClassifier", "EncoderClassifier",
           "FixedClassifier", "KeywordClassifier"]
