"""The record every evaluation task produces, and how its prompt reaches a model.

An :class:`Example` is plain data: the task builders (:mod:`windowkv.eval.tasks`) make them, the runner
renders each with :func:`render_prompt`, generates, and scores the output with
:func:`windowkv.eval.metrics.score_example`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

#: the keys older task builders put in ``meta`` that are typed fields now (lifted by ``Example``)
_TYPED_META_KEYS = ("postprocess", "score_with_prefix", "all_classes", "stop_strings", "prompt_tokens")


@dataclass(frozen=True, config=ConfigDict(strict=False, arbitrary_types_allowed=False))
class Example:
    """One evaluation prompt with its gold answers: a typed, validated record (a pydantic dataclass).

    Attributes:
        id: unique and stable for a given seed, e.g. ``"needle-L1024-d0.50-s0"``.
        task: the task name, e.g. ``"needle"``, ``"ruler/niah_single"``, ``"longbench/hotpotqa"``.
        prompt: the user message. :func:`render_prompt` wraps it in the chat template when the
            tokenizer has one and ``use_chat_template`` is true.
        answers: gold answers.
        metric: the primary metric, a registered metric name (``windowkv plugins``).
        max_new_tokens: generation length (tokens).
        meta: the task's own descriptive details, e.g. ``{"needle": "7341952", "key": "..."}``. Nothing
            windowkv does depends on it; what it reads is a typed field below.
        extra_metrics: further metrics reported next to ``metric`` (e.g. ``("rouge1",)`` for needles).
        references: per-metric gold answers that replace ``answers`` for that metric, e.g. the needle
            sentence for ``rouge1`` (the paper's needle protocol scores Rouge-1 against the needle).
        answer_prefix: text the assistant's turn starts with (RULER's answer prefix); the model
            continues it. Empty for none.
        use_chat_template: False for prompts given to chat models as raw text (LongBench's few-shot
            and code datasets).
        length: the prompt length (tokens) the example was generated for; ``None`` for dataset records.
        depth: the needle depth in ``[0, 1]`` (needle tasks), else ``None``.
        postprocess: cleaning before scoring: ``"ruler"`` or ``"first_line"`` (see
            :func:`windowkv.eval.metrics.postprocess`), ``None`` for none.
        score_with_prefix: score the answer prefix + the generated text (the needle protocol).
        all_classes: the label set of a classification dataset (LongBench's trec, lsht).
        stop_strings: generation stops at any of these (LongBench's samsum stops at a new line).
        context_chars: the first ``context_chars`` characters of ``prompt`` are prefilled and compressed
            alone, then the rest (the question, the chat template's end, the answer prefix) is appended to
            the compressed cache: a query-agnostic test. ``None``: the whole prompt is compressed at once.
        prompt_tokens: the prompt's length (tokens) as the builder counted it (the plain prompt, before the
            chat template), e.g. to check it fits ``length``; ``None`` when not counted.
        source_length: the record's own length as its dataset states it (LongBench: words), written to
            result rows as ``source_length``; ``None`` for generated examples.

    For code written against the older dict-based record, the keys ``postprocess``, ``score_with_prefix``,
    ``all_classes``, ``stop_strings`` and ``prompt_tokens`` found in ``meta`` are moved to their fields.
    """

    id: str
    task: str
    prompt: str
    answers: list[str]
    metric: str
    max_new_tokens: Annotated[int, Field(strict=True)]
    meta: dict[str, Any] = field(default_factory=dict)
    extra_metrics: tuple[str, ...] = ()
    references: dict[str, list[str]] = field(default_factory=dict)
    answer_prefix: str = ""
    use_chat_template: bool = True
    length: int | None = None
    depth: float | None = None
    postprocess: Literal["ruler", "first_line"] | None = None
    score_with_prefix: bool = False
    all_classes: tuple[str, ...] = ()
    stop_strings: tuple[str, ...] = ()
    context_chars: int | None = None
    prompt_tokens: int | None = None
    source_length: int | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError(f"an example needs a non-empty string id (got {self.id!r})")
        if isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 1:
            raise ValueError(f"{self.id}: max_new_tokens must be an integer >= 1 (got {self.max_new_tokens!r})")
        lifted = {k: self.meta[k] for k in _TYPED_META_KEYS if k in self.meta}
        if lifted:
            object.__setattr__(self, "meta", {k: v for k, v in self.meta.items() if k not in lifted})
            for key, value in lifted.items():
                value = tuple(value) if key in ("all_classes", "stop_strings") and value else value
                object.__setattr__(self, key, value if value is not None else getattr(self, key))

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric reported for this example, the primary one first."""
        return (self.metric, *(m for m in self.extra_metrics if m != self.metric))

    def gold(self, metric: str) -> list[str]:
        """The gold answers ``metric`` compares against (``references[metric]`` or ``answers``)."""
        return list(self.references.get(metric, self.answers))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (for result rows)."""
        data = asdict(self)
        for key in ("extra_metrics", "all_classes", "stop_strings"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        """The inverse of :meth:`to_dict`."""
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
