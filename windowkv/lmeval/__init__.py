"""windowkv for lm-evaluation-harness (``pip install "windowkv[lmeval]"``).

Importing this package registers the lm-eval model ``windowkv`` (:class:`WindowKVLM`). lm-eval does not
discover models through entry points, so run it through ``windowkv-lm-eval`` (lm-eval's own command line
with the model registered) or import ``windowkv.lmeval`` before ``lm_eval.simple_evaluate``.
"""

from windowkv.lmeval.model import MODEL_NAME, WindowKVLM, resolve_model_args
from windowkv.lmeval.scoring import ContinuationScore, score_continuations

__all__ = ["MODEL_NAME", "WindowKVLM", "ContinuationScore", "resolve_model_args", "score_continuations"]
