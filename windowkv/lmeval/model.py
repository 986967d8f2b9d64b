"""The lm-evaluation-harness model ``windowkv``: Hugging Face's ``HFLM`` with a compression policy.

::

    windowkv-lm-eval run --model windowkv --tasks hellaswag \\
        --model_args pretrained=smollm2,policy=windowkv,budget=0.25

Model arguments (besides every ``hf`` one):

- ``pretrained``: a hub id, a local directory, or ``smollm2`` (the default: the embedded SmolLM2-135M-Instruct);
- ``policy``: a preset name (``windowkv``, ``snapkv``, ``full``...; ``windowkv plugins``) or a policy file
  (``.yaml``/``.toml``/``.json``); default ``windowkv``;
- ``budget``: tokens (``256``) or a ratio of the review tokens (``0.25``, ``25%``); default the policy's,
  else 0.25;
- ``task_label``: force the policy's task profile (``qa``, ``summarization``...) instead of its classifier.

Both are checked before the model loads: an unknown policy lists the registered ones, a bad budget names
``model_args.budget``.

What each request type does:

- ``generate_until``: ``HFLM``'s batched generation with the policy applied: the prompt's KV cache is
  compressed at prefill and every new token attends to the kept KV only.
- ``loglikelihood``: the context is prefilled and compressed, then the continuation is scored against the
  compressed cache (:func:`windowkv.lmeval.scoring.score_continuations`): the score is what generating
  under the policy assigns to the continuation; the first continuation token comes from the prefill's
  last logits, as the first generated token does.
- ``loglikelihood_rolling`` (perplexity tasks) compresses **nothing**: lm-eval cuts the text into disjoint
  windows whose context is a single token, so there is no prompt to compress; the scores are ``hf``'s.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator
from tqdm import tqdm

from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.lmeval.scoring import score_continuations

MODEL_NAME = "windowkv"


def resolve_model_args(policy: str = "windowkv", budget: Any = None) -> Any:
    """The :class:`windowkv.Policy` of ``policy`` and ``budget``, with errors naming ``model_args.<field>``.

    Raises:
        ConfigError: an unknown preset (listing the registered ones), an invalid policy file or budget.
    """
    from windowkv.eval.variants import make_variants

    try:
        (variant,) = make_variants([str(policy)], None if budget in (None, "") else [budget])
    except ConfigError as exc:
        raise ConfigError([(_model_args_path(loc), msg) for loc, msg in exc.errors], exc.source) from None
    except UnknownComponentError as exc:
        raise ConfigError([("model_args.policy", str(exc))]) from None
    return variant.policy


def _model_args_path(loc: str) -> str:
    """The model argument a policy error belongs to: ``budget``, else ``policy`` (a file's fields below it)."""
    if loc == "budget":
        return "model_args.budget"
    if loc in ("", "preset", "policy"):
        return "model_args.policy"
    return f"model_args.policy.{loc}"


@register_model(MODEL_NAME)
class WindowKVLM(HFLM):
    """``HFLM`` whose generations and log-likelihoods run under a windowkv compression policy.

    Args:
        pretrained: a hub id, a local directory, a loaded model, or ``"smollm2"`` (the embedded model).
        policy: a preset name or a policy config file.
        budget: tokens or a ratio of the review tokens; ``None`` keeps the policy's (else 0.25).
        task_label: force this task profile of the policy (skips its classifier).
        **kwargs: every other ``hf`` model argument (``batch_size``, ``device``, ``dtype``...).
    """

    def __init__(self, pretrained: Any = "smollm2", policy: str = "windowkv", budget: Any = None,
                 task_label: str | None = None, **kwargs: Any) -> None:
        self.windowkv_policy = resolve_model_args(policy, budget)  # before any model loads
        if task_label is not None and task_label not in self.windowkv_policy.profiles:
            raise ConfigError([("model_args.task_label", f"unknown task profile {task_label!r}; the policy's "
                                                         f"profiles: {', '.join(sorted(self.windowkv_policy.profiles))}")])
        self.windowkv_task_label = task_label
        if isinstance(pretrained, str):
            from windowkv.models import DEFAULT_ALIASES, ensure_default_model_cache

            if pretrained.lower() in DEFAULT_ALIASES:
                pretrained = str(ensure_default_model_cache())
        super().__init__(pretrained=pretrained, **kwargs)
        if self.backend != "causal":
            raise ConfigError([("model_args.pretrained", "windowkv compresses decoder-only (causal) models; "
                                                         f"{pretrained!r} loads as {self.backend}")])

    # ------------------------------------------------------------------ generation

    def _model_generate(self, context: Any, max_length: int, stop: list[str], **generation_kwargs: Any) -> Any:
        with self.windowkv_policy.apply(self.model, self.tokenizer, task=self.windowkv_task_label):
            return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # ------------------------------------------------------------------ log-likelihoods

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Perplexity of whole texts, uncompressed (lm-eval's windows have a one-token context)."""
        self._windowkv_plain = True
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self._windowkv_plain = False

    def _loglikelihood_tokens(self, requests: list[tuple[Any, list[int], list[int]]], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if getattr(self, "_windowkv_plain", False):
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        batch_size = self.batch_size if self.batch_size != "auto" else (override_bs or self._detect_batch_size())
        ordered = Collator(requests, sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])))
        results: list[tuple[float, bool]] = []
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0,
                   desc="Running loglikelihood requests (windowkv)")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        for chunk in ordered.get_batched(n=int(batch_size)):
            contexts, continuations = [], []
            for _, context, continuation in chunk:
                if not context or not continuation or len(continuation) > self.max_length:
                    raise ValueError(f"cannot score a context of {len(context)} and a continuation of "
                                     f"{len(continuation)} tokens (max_length {self.max_length})")
                kept = (list(context) + list(continuation))[-(self.max_length + 1):]  # truncate from the left
                contexts.append(kept[:len(kept) - len(continuation)] or kept[:1])
                continuations.append(list(continuation))
            scores = score_continuations(self.model, contexts, continuations, policy=self.windowkv_policy,
                                         tokenizer=self.tokenizer, task=self.windowkv_task_label,
                                         pad_token_id=pad)
            for (request, _, _), score in zip(chunk, scores, strict=True):
                answer = (score.logprob, score.is_greedy)
                results.append(answer)
                if request is not None:
                    self.cache_hook.add_partial("loglikelihood", request, answer)
                bar.update(1)
        bar.close()
        return ordered.get_original(results)

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["windowkv_policy"] = self.windowkv_policy.to_config()
        return info
