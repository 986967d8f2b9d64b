"""An example windowkv plugin: :class:`ValueNormScorer` and the ``windowkv_value_norm`` preset."""

from windowkv_example_scorer.value_norm import ValueNormScorer

__all__ = ["ValueNormScorer"]
__version__ = "0.1.0"
