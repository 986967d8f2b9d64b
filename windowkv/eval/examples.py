"""The record every evaluation task produces, and how its prompt reaches a model.

An :class:`Example` is plain data: the task builders (:mod:`windowkv.eval.tasks`) make them, the runner
renders each with :func:`render_prompt`, generates, and scores the output with
:func:`windowkv.eval.metrics.score_example`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One evaluation prompt with its gold answers.

    Attributes:
        id: unique and stable for a given seed, e.g. ``"needle-L1024-d0.50-s0"``.
        task: the task name, e.g. ``"needle"``, ``"ruler/niah_single"``, ``"longbench/hotpotqa"``.
        prompt: the user message. :func:`render_prompt` wraps it in the chat template when the
            tokenizer has one and ``use_chat_template`` is true.
        answers: gold answers.
        metric: the primary metric, a key of :data:`windowkv.eval.metrics.METRICS`.
        max_new_tokens: generation length (tokens).
        meta: task details, e.g. ``{"length": 1024, "depth": 0.5, "needle": "7341952"}``. Keys read by
            :func:`~windowkv.eval.metrics.score_example`: ``all_classes`` (LongBench classification),
            ``postprocess`` (``"ruler"`` or ``"first_line"``, see
            :func:`windowkv.eval.metrics.postprocess`) and ``score_with_prefix`` (score the answer
            prefix + the generated text, as needles do). Key read by runners: ``stop_strings``
            (LongBench's samsum stops at a new line). Synthetic tasks also record ``length`` (the
            requested tokens) and ``prompt_tokens`` (the tokens of ``prompt``).
        extra_metrics: further metrics reported next to ``metric`` (e.g. ``("rouge1",)`` for needles).
        references: per-metric gold answers that replace ``answers`` for that metric, e.g. the needle
            sentence for ``rouge1`` (the paper's needle protocol scores Rouge-1 against the needle).
        answer_prefix: text the assistant's turn starts with (RULER's answer prefix); the model
            continues it. Empty for none.
        use_chat_template: False for prompts given to chat models as raw text (LongBench's few-shot
            and code datasets).
    """

    id: str
    task: str
    prompt: str
    answers: list[str]
    metric: str
    max_new_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)
    extra_metrics: tuple[str, ...] = ()
    references: dict[str, list[str]] = field(default_factory=dict)
    answer_prefix: str = ""
    use_chat_template: bool = True

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValueError(f"an example needs a non-empty string id (got {self.id!r})")
        if isinstance(self.answers, str) or not all(isinstance(a, str) for a in self.answers):
            raise ValueError(f"{self.id}: answers must be a list of strings (got {self.answers!r})")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise ValueError(f"{self.id}: max_new_tokens must be an integer >= 1 (got {self.max_new_tokens!r})")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric reported for this example, the primary one first."""
        return (self.metric, *(m for m in self.extra_metrics if m != self.metric))

    def gold(self, metric: str) -> list[str]:
        """The gold answers ``metric`` compares against (``references[metric]`` or ``answers``)."""
        return list(self.references.get(metric, self.answers))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (for result rows)."""
        return {
            "id": self.id, "task": self.task, "prompt": self.prompt, "answers": list(self.answers),
            "metric": self.metric, "max_new_tokens": self.max_new_tokens, "meta": dict(self.meta),
            "extra_metrics": list(self.extra_metrics),
            "references": {k: list(v) for k, v in self.references.items()},
            "answer_prefix": self.answer_prefix, "use_chat_template": self.use_chat_template,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        """The inverse of :meth:`to_dict`."""
        data = dict(data)
        data["extra_metrics"] = tuple(data.get("extra_metrics", ()))
        return cls(**data)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, example: Example, *, warn: bool = True) -> str:
    """The text to tokenize for ``example``: chat-wrapped when possible, else plain.

    With a chat template (and ``example.use_chat_template``) the prompt is the single user message
    rendered with ``add_generation_prompt=True``. Otherwise it is the prompt itself, followed by a
    new line when there is an answer prefix. The answer prefix always comes last, so the model
    continues it. Never raises for a tokenizer without a chat template: it warns (once per call when
    ``warn``) and falls back to plain text.

    Args:
        tokenizer: a Hugging Face tokenizer (or anything with ``apply_chat_template``), or None.
        example: the example to render.

    Returns:
        The prompt text. Tokenize it with ``add_special_tokens=False`` when a chat template was
        applied (the template already holds the special tokens it needs).
    """
    prefix = example.answer_prefix.strip()
    if example.use_chat_template and tokenizer is not None and has_chat_template(tokenizer):
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": example.prompt}], tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # a broken template must not stop an evaluation
            if warn:
                warnings.warn(f"chat template failed ({exc}); using the plain prompt", stacklevel=2)
        else:
            return text + prefix
    elif example.use_chat_template and warn and tokenizer is not None:
        warnings.warn("the tokenizer has no chat template: using the plain prompt", stacklevel=2)
    return example.prompt + ("\n" + prefix if prefix else "")


def uses_chat_template(tokenizer: Any, example: Example) -> bool:
    """Whether :func:`render_prompt` applies the chat template (then skip special tokens when tokenizing)."""
    return example.use_chat_template and tokenizer is not None and has_chat_template(tokenizer)
