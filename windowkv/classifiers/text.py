"""What the learned classifiers share: labels, input checks, the prompt's head and tail, load errors.

WindowKV's classifier (arXiv 2503.17922, Sec. 3.1) reads a long prompt's first 256 and last 256
tokens. :func:`head_tail_ids` gets them without tokenising the whole prompt: it cuts the text by
characters first (``chars_per_token`` characters per wanted token, widened until enough tokens are
found, at most ``MAX_CHARS_PER_TOKEN`` per token), so a 100k-token prompt costs as much as a 1k-token
one, even when it has no whitespace.

Documented fallbacks (each logged once per process, on the ``windowkv.classifiers`` logger):

- an empty or whitespace-only prompt gets ``EMPTY_LABEL`` (``other``) with confidence 0.5;
- a prompt whose read part is mostly non-Latin letters is classified as is (the shipped models were
  trained on English prompts), with a warning.

Missing or corrupt weights and encoder paths that do not exist raise :class:`ClassifierLoadError`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal, Sequence

from windowkv.errors import WindowKVError
from windowkv.run import TaskPrediction

log = logging.getLogger("windowkv.classifiers")

#: the paper's two classes, and the LongBench task families behind them
TASK_LABELS = ("qa", "other")
FAMILY_LABELS: dict[str, str] = {
    "single_doc_qa": "qa", "multi_doc_qa": "qa", "retrieval": "qa",
    "summarisation": "other", "few_shot": "other", "code_completion": "other", "counting": "other",
}
FAMILIES = tuple(FAMILY_LABELS)
EMPTY_LABEL = "other"
#: :func:`head_tail_ids` never tokenises more than this many characters per wanted token
MAX_CHARS_PER_TOKEN = 64
Level = Literal["task", "family"]


class ClassifierLoadError(WindowKVError):
    """A classifier's weights or encoder cannot be found or read."""


def level_labels(level: Level) -> tuple[str, ...]:
    """The labels a classifier of this ``level`` returns: ``qa``/``other`` or the seven families."""
    return TASK_LABELS if level == "task" else FAMILIES


@functools.lru_cache(maxsize=None)
def log_once(message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` on ``windowkv.classifiers`` the first time it is seen in this process."""
    log.log(level, message)


def check_texts(prompts: Sequence[str | None], name: str) -> list[bool]:
    """Whether each prompt has text to read; ``None`` is an error, empty text the logged fallback."""
    usable = []
    for prompt in prompts:
        if prompt is None:
            raise ValueError(f"the {name} classifier needs the prompt text: pass tokenizer= (or task=) to apply()")
        usable.append(bool(prompt.strip()))
    if not all(usable):
        log_once(f"{name} classifier: empty or whitespace-only prompt, labelled {EMPTY_LABEL!r} (fallback)")
    return usable


def empty_prediction(level: Level) -> TaskPrediction:
    return TaskPrediction(EMPTY_LABEL if level == "task" else "summarisation", 0.5)


def warn_if_not_english(text: str, name: str) -> None:
    letters = [c for c in text if c.isalpha()]
    if letters and sum(not c.isascii() for c in letters) > len(letters) / 2:
        log_once(f"{name} classifier: a prompt is mostly non-Latin text; it is classified as is, but the "
                 "shipped weights were trained on English prompts")


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]


def head_tail_ids(tokenizer: Any, text: str, head: int = 256, tail: int = 256,
                  chars_per_token: int = 8, paragraphs: bool = False) -> tuple[list[int], list[int]]:
    """The first ``head`` and last ``tail`` token ids of ``text`` (overlapping for short texts).

    Only the first and last ``chars_per_token x head|tail`` characters are tokenised (widened
    while they yield too few tokens), never the whole of a long prompt. With ``paragraphs``, the
    head stops at the first blank line and the tail starts after the last one when they fall in
    those characters: an instruction set off from the document is read without the document.
    """
    if paragraphs:
        stripped = text.strip()
        first_break = stripped.find("\n\n", 0, head * chars_per_token)
        last_break = stripped.rfind("\n\n", max(len(stripped) - tail * chars_per_token, 0))
        head_text = stripped[:first_break] if first_break > 0 else text
        tail_text = stripped[last_break + 2:] if last_break > 0 else text
        return (head_tail_ids(tokenizer, head_text, head, 0, chars_per_token)[0],
                head_tail_ids(tokenizer, tail_text, 0, tail, chars_per_token)[1])

    def edge(n: int, first: bool) -> list[int]:
        chars = n * chars_per_token
        while True:
            part = text[:chars] if first else text[-chars:]
            ids = _ids(tokenizer, part)
            # more than n tokens: the token the character cut may have split is not among the n kept;
            # past MAX_CHARS_PER_TOKEN characters per token (one giant "word"), settle for fewer tokens
            if len(ids) > n or chars >= len(text) or chars >= n * MAX_CHARS_PER_TOKEN:
                return ids[:n] if first else ids[-n:]
            chars *= 2

    return (edge(head, True) if head else []), (edge(tail, False) if tail else [])


def encode_batch(tokenizer: Any, pieces: Sequence[list[int]]) -> dict[str, Any]:
    """Right-padded ``input_ids`` / ``attention_mask`` ``[N, T]`` of ``[CLS] ids [SEP]`` sequences."""
    import torch

    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    seqs = [[t for t in (first,) if t is not None] + list(ids) + [t for t in (last,) if t is not None]
            for ids in pieces]
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id or 0
    return {"input_ids": torch.tensor([s + [pad] * (width - len(s)) for s in seqs]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])}


def encoder_inputs(tokenizer: Any, texts: Sequence[str], head: int, tail: int) -> dict[str, Any]:
    """Padded ``[CLS] head tail [SEP]`` batches: the first ``head`` and last ``tail`` tokens (the whole
    text when it is shorter)."""
    pieces = []
    for text in texts:
        first, last = head_tail_ids(tokenizer, text, head + tail, head + tail)
        pieces.append(first if len(first) < head + tail else first[:head] + last[-tail:])
    return encode_batch(tokenizer, pieces)


def mean_probs_to_level(probs: Any, classes: Sequence[str], level: Level) -> list[TaskPrediction]:
    """Predictions at ``level`` from class probabilities ``[N, C]`` over ``classes`` (families or
    task labels): family probabilities are summed into their task label."""
    import torch

    if level == "task" and tuple(classes) != TASK_LABELS:
        merge = torch.tensor([[float(FAMILY_LABELS[c] == t) for t in TASK_LABELS] for c in classes])
        probs, classes = probs @ merge, TASK_LABELS
    elif level == "family" and tuple(classes) != FAMILIES:
        raise ClassifierLoadError(f"these weights predict {list(classes)}; level='family' needs family classes")
    conf, idx = probs.max(dim=-1)
    return [TaskPrediction(classes[i], round(float(c), 6)) for i, c in zip(idx.tolist(), conf)]
