"""What one policy kept of one prompt, layer by layer, and why it answered what it answered.

:func:`inspect_prompt` runs the prompt twice:

1. under the policy (``policy.apply`` + greedy ``generate``): the answer and every layer's kept positions
   (:attr:`windowkv.run.CompressionRun.selections`);
2. without it, one forward pass with hooks on the attention modules: the attention the prompt's last
   ``s`` queries (the policy's suffix) pay to every position of every layer, computed like the
   ``suffix_attention`` scorer (``s x L`` weights per head, never ``L x L``).

From both it derives, per layer: the kept mask over prompt positions, the share of the suffix queries'
attention to review tokens that the kept review tokens hold (``review_mass``: 1 means nothing the suffix
looked at was evicted), whether the needle's tokens survived, and the Jaccard overlap of kept review sets
between layers (the measurement behind WindowKV's index sharing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from windowkv.errors import WindowKVError
from windowkv.eval.examples import Example, render_prompt, uses_chat_template
from windowkv.eval.needle_prose import char_span_tokens, token_offsets


class PromptTooLongError(WindowKVError, ValueError):
    """The prompt (plus the tokens to generate) does not fit the model's context."""


@dataclass
class Inspection:
    """The result of :func:`inspect_prompt`; every position is a token index of the rendered prompt.

    Attributes:
        kept: ``[layers, L]`` share of the KV heads that kept each position (1.0 for a head-shared
            selection that kept it, 0.0 evicted).
        attention: ``[layers, L]`` attention of the suffix queries to each position, summed over the
            queries, averaged over query heads (each row sums to ``s``).
        review_mass: per layer, kept review attention / all review attention, in ``[0, 1]``.
        needle_kept: per layer, the share of the answer's tokens (``answer_span``) kept in every head.
        jaccard: ``[layers, layers]`` |A ∩ B| / |A ∪ B| of the kept review positions (union over heads).
        lost_layers: layers that evicted some answer token.
        leaders: the index-sharing leader of each layer (itself when it selects on its own).
    """

    prompt_tokens: int
    suffix_size: int
    tokens: list[str]
    kept: np.ndarray
    attention: np.ndarray
    review_mass: list[float]
    needle_kept: list[float]
    jaccard: np.ndarray
    lost_layers: list[int]
    leaders: list[int]
    needle_span: tuple[int, int] | None = None
    answer_span: tuple[int, int] | None = None
    prediction: str = ""
    answers: list[str] = field(default_factory=list)
    score: float | None = None
    policy: str = ""
    budget: str = ""
    task_label: str | None = None

    @property
    def num_layers(self) -> int:
        return int(self.kept.shape[0])

    @property
    def suffix_start(self) -> int:
        return self.prompt_tokens - min(self.suffix_size, self.prompt_tokens)

    def to_json(self) -> dict[str, Any]:
        """Everything as plain JSON (arrays as nested lists, the kept mask rounded to 3 digits)."""
        data = asdict(self)
        data["kept"] = np.round(self.kept, 3).tolist()
        data["attention"] = np.round(self.attention, 5).tolist()
        data["jaccard"] = np.round(self.jaccard, 4).tolist()
        data["suffix_start"] = self.suffix_start
        return data


def inspection_from_json(data: dict[str, Any]) -> Inspection:
    """The :class:`Inspection` saved by :meth:`Inspection.to_json` (e.g. to redraw its picture)."""
    fields = {k: data[k] for k in Inspection.__dataclass_fields__ if k in data}
    for name in ("kept", "attention", "jaccard"):
        fields[name] = np.asarray(fields[name], dtype=np.float32)
    for name in ("needle_span", "answer_span"):
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    return Inspection(**fields)


def _span_tokens(tokenizer: Any, text: str, start: int, end: int) -> tuple[int, int]:
    return char_span_tokens(token_offsets(tokenizer, text), start, end)


def locate(tokenizer: Any, text: str, example: Example) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Token spans of the needle sentence and of its answer in the rendered ``text`` (None if absent).

    The needle is ``example.references["rouge1"][0]`` (needle tasks) and the answer ``example.answers[0]``,
    found after the needle's start (or anywhere when there is no needle).
    """
    base = max(text.find(example.prompt), 0)
    needle = (example.references.get("rouge1") or [None])[0]
    needle_span = answer_span = None
    start = 0
    if needle and needle in text:
        start = text.index(needle, base)
        needle_span = _span_tokens(tokenizer, text, start, start + len(needle))
    if example.answers and example.answers[0] and example.answers[0] in text[start:]:
        a = text.index(example.answers[0], start)
        answer_span = _span_tokens(tokenizer, text, a, a + len(example.answers[0]))
    return needle_span, answer_span


def suffix_attention_by_layer(model: Any, input_ids: torch.Tensor, suffix_size: int) -> np.ndarray:
    """``[layers, L]``: attention of the last ``suffix_size`` queries to every position, in every layer.

    One uncompressed forward pass; each layer's queries are re-projected from its input (like the
    policies' scorers) and its keys read from the cache after the layer ran.
    """
    from transformers import DynamicCache

    from windowkv.eval.measure import cache_argument
    from windowkv.hf.architectures import attention_layers, make_query_projector
    from windowkv.run import LayerInputs
    from windowkv.scorers.suffix_attention import suffix_attention

    layers = attention_layers(model)
    cache = DynamicCache(config=model.config)
    length = input_ids.shape[1]
    out = np.zeros((len(layers), length), dtype=np.float32)
    inputs: dict[int, tuple[Any, Any]] = {}

    def pre(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        inputs[module.layer_idx] = (hidden, kwargs["position_embeddings"])

    def post(module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        idx = module.layer_idx
        layer = cache.layers[idx]
        project = make_query_projector(module, *inputs.pop(idx))
        li = LayerInputs(idx, len(layers), layer.keys, layer.values,
                         torch.ones(1, length, dtype=torch.bool, device=layer.keys.device),
                         min(suffix_size, length), module.scaling, module.num_key_value_groups, project,
                         padded=False)
        weights = suffix_attention(li)  # [1, H_kv, G, s, L]
        out[idx] = weights.sum(dim=3).mean(dim=(1, 2))[0].cpu().numpy()

    handles = [m.register_forward_pre_hook(pre, with_kwargs=True) for m in layers]
    handles += [m.register_forward_hook(post, with_kwargs=True) for m in layers]
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True,
                  **cache_argument(model, cache))
    finally:
        for h in handles:
            h.remove()
    return out


def kept_masks(run: Any, num_layers: int, length: int) -> np.ndarray:
    """``[layers, L]`` share of heads keeping each position (1 everywhere in a layer that kept all)."""
    kept = np.ones((num_layers, length), dtype=np.float32)
    for idx, sel in run.selections.items():
        if sel.positions is None:
            continue
        positions, valid = sel.positions[0], sel.valid[0]  # [H, K]
        mask = torch.zeros(positions.shape[0], length, dtype=torch.float32)
        mask.scatter_(1, positions.clamp(0, length - 1).cpu(), valid.float().cpu())
        kept[idx] = mask.mean(0).numpy()
    return kept


def jaccard_matrix(sets: np.ndarray) -> np.ndarray:
    """``[n, n]`` Jaccard overlap of the rows of a ``[n, R]`` bool matrix (1 where both are empty)."""
    a = sets.astype(np.float32)
    inter = a @ a.T
    sizes = a.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def inspect_prompt(model: Any, tokenizer: Any, policy: Any, example: Example, *,
                   max_new_tokens: int | None = None, label: str = "", budget: str = "") -> Inspection:
    """Run ``example`` under ``policy`` and measure what each layer kept (see the module docstring).

    Raises:
        PromptTooLongError: the rendered prompt plus ``max_new_tokens`` exceeds the model's context.
    """
    from windowkv.eval.measure import ModelInfo, run_prompt
    from windowkv.eval.metrics import score_example

    chat = uses_chat_template(tokenizer, example)
    text = render_prompt(tokenizer, example, warn=False)
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
    length = int(input_ids.shape[1])
    new_tokens = max_new_tokens or example.max_new_tokens
    info = ModelInfo.of(model)
    if info.max_positions is not None and length + new_tokens > info.max_positions:
        raise PromptTooLongError(f"the prompt has {length} tokens (+ {new_tokens} to generate), more than the "
                                 f"model's context of {info.max_positions} positions; use a shorter prompt")
    with policy.apply(model, tokenizer) as handle:
        gen = run_prompt(model, tokenizer, handle, text, chat=chat, max_new_tokens=new_tokens,
                         input_ids=input_ids)
        run = handle.last_run
    num_layers = info.num_layers
    suffix = gen.suffix_size if gen.suffix_size is not None else length
    kept = kept_masks(run, num_layers, length) if run is not None else np.ones((num_layers, length), np.float32)
    attention = suffix_attention_by_layer(model, input_ids.to(model.device), suffix)
    review = max(length - suffix, 0)
    att_review = attention[:, :review]
    total = att_review.sum(1)
    kept_review_mass = (att_review * kept[:, :review]).sum(1)
    review_mass = np.where(total > 0, kept_review_mass / np.maximum(total, 1e-12), 1.0)
    needle_span, answer_span = locate(tokenizer, text, example)
    if answer_span is not None and answer_span[1] > answer_span[0]:
        needle_kept = (kept[:, answer_span[0]:answer_span[1]] >= 1.0).mean(1)
    else:
        needle_kept = np.ones(num_layers, dtype=np.float32)
    scores = score_example(example, gen.prediction) if example.answers else {}
    ids = input_ids[0].tolist()
    return Inspection(
        prompt_tokens=length, suffix_size=suffix, tokens=tokenizer.convert_ids_to_tokens(ids),
        kept=kept, attention=attention, review_mass=[round(float(x), 4) for x in review_mass],
        needle_kept=[round(float(x), 4) for x in needle_kept],
        jaccard=jaccard_matrix(kept[:, :review] > 0), lost_layers=[i for i, x in enumerate(needle_kept) if x < 1.0],
        leaders=list(run.leaders) if run is not None else list(range(num_layers)),
        needle_span=needle_span, answer_span=answer_span, prediction=gen.prediction, answers=list(example.answers),
        score=scores.get(example.metric), policy=label, budget=budget, task_label=gen.task_label,
    )


def summary_lines(result: Inspection, layers: Sequence[int] | None = None) -> list[str]:
    """A few lines for the terminal: the answer, the lost layers, the mass retained."""
    lines = [f"answer {result.prediction.strip()!r} (gold {', '.join(result.answers)}; score {result.score})",
             f"prompt {result.prompt_tokens} tokens, suffix {result.suffix_size}; needle tokens "
             f"{result.needle_span}, answer tokens {result.answer_span}"]
    lost = result.lost_layers
    lines.append(f"layers that lost part of the answer: {lost if lost else 'none'} ({len(lost)}/{result.num_layers})")
    mass = result.review_mass
    lines.append("review attention mass kept per layer: " + " ".join(f"{m:.2f}" for m in mass))
    return lines
