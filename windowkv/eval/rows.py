"""One result row: an example run under one policy at one budget, as a typed record.

The runner (:mod:`windowkv.eval.runner`) and ``windowkv multiturn`` (:mod:`windowkv.eval.multiturn`) build
:class:`ResultRow` objects; :mod:`windowkv.eval.results` writes them to ``results.jsonl`` one JSON object
per line and reads them back; the summary, tables and plots read their attributes.

The file format is the JSON object of the fields a producer set (:meth:`ResultRow.to_json`): a skipped
row has no ``prediction`` key, a scored row without a decode speed has ``"decode_tokens_per_s": null``,
as rows always had. Keys this model does not know (a task plugin's, or a newer windowkv's) are kept
(``extra="allow"``), so reading and rewriting a file loses nothing; windowkv itself reads only the
typed fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ResultRow(BaseModel):
    """One line of ``results.jsonl``: what one generation produced and what it cost.

    Every field but ``id``, ``task``, ``policy`` and ``budget`` is optional: a skipped row (a prompt
    longer than the model's context) carries its identity, its prompt size and ``skipped``; a
    ``windowkv multiturn`` row carries the turn fields instead of the cache measurements. Units: token
    counts in tokens, sizes in bytes, times in seconds, fractions in ``[0, 1]``.
    """

    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

    # identity: what makes a row unique is (id, policy, budget) (see windowkv.eval.results.row_key)
    id: str = Field(description="The example's id, e.g. ``needle-L1024-d0.50-s0``.")
    task: str = Field(description="The task name, e.g. ``needle`` or ``longbench/hotpotqa``.")
    policy: str = Field(description="The policy's label (a preset name, or a policy file's name).")
    budget: str = Field(description="The budget as the variant names it: ``\"0.25\"`` (ratio of the review "
                                    "tokens), ``\"256\"`` (tokens per layer), ``\"65536B\"`` or ``\"12% bytes\"``.")
    budget_kind: str | None = Field(None, description="``tokens``, ``ratio``, ``bytes`` or ``bytes_ratio``.")
    budget_value: int | float | str | None = Field(
        None, description="The budget as the policy's config stores it (``Budget.to_config()``).")
    policy_hash: str | None = Field(None, description="A short hash of the policy's complete configuration; "
                                                      "a rerun into the same directory must match it.")
    model: str | None = Field(None, description="The model's name; a rerun with another model is refused.")
    length: int | None = Field(None, description="The prompt length (tokens) a synthetic example was generated "
                                                 "for; None for dataset records (LongBench).")
    depth: float | None = Field(None, description="The needle depth, a fraction in [0, 1]; None without needle.")
    metric: str | None = Field(None, description="The primary metric's name (``score`` is its value).")
    prompt_tokens: int | None = Field(None, description="Tokens of the rendered prompt (chat template included).")
    source_length: int | None = Field(None, description="LongBench's own length of the record (words).")
    skipped: str | None = Field(None, description="Why the example was not run (then no prediction, score or "
                                                  "measurement); None for a row that ran.")
    shared_prefill: bool | None = Field(None, description="True when the row replayed a shared prefill "
                                                          "(its times are the shared prefill's).")
    prefill_chunk: int | None = Field(None, description="Chunk length (tokens) of a chunked prefill; None for a "
                                                        "one-shot prefill.")
    # the answer
    prediction: str | None = Field(None, description="The generated text.")
    answers: list[str] | None = Field(None, description="The gold answers.")
    score: float | None = Field(None, description="The primary metric's value, usually in [0, 1].")
    scores: dict[str, float | None] = Field(default_factory=dict,
                                            description="Every metric of the example by name, the primary first.")
    task_label: str | None = Field(None, description="The label the policy's task classifier chose.")
    # the kept KV cache (windowkv.eval.measure.cache_stats)
    kept_tokens: int | None = Field(None, description="KV tokens kept after the prefill, summed over layers.")
    full_tokens: int | None = Field(None, description="KV tokens of the full cache: prompt tokens x layers.")
    kept_fraction: float | None = Field(None, description="kept_tokens / full_tokens (suffix included).")
    kept_review_fraction: float | None = Field(None, description="The fraction of the review tokens (the prompt "
                                                                 "before the suffix) kept, over all layers.")
    kept_review_tokens: float | None = Field(None, description="Review tokens kept per layer, averaged over "
                                                               "layers (the budget actually used).")
    suffix_size: int | None = Field(None, description="The policy's suffix (observation window), tokens.")
    kept_per_layer: list[int] | None = Field(None, description="KV tokens kept in each layer.")
    kv_bytes_kept: int | None = Field(None, description="Bytes of key/value storage after the prefill (measured "
                                                        "from the cache's tensors when kv_bytes_measured).")
    kv_bytes_full: int | None = Field(None, description="Bytes of the full (uncompressed) cache of the prompt.")
    kv_bytes_fraction: float | None = Field(None, description="kv_bytes_kept / kv_bytes_full.")
    kv_bytes_measured: bool | None = Field(None, description="Whether kv_bytes_kept was measured from the "
                                                             "cache's tensors (else: kept tokens x bytes per token).")
    # the cost
    prefill_seconds: float | None = Field(None, description="Seconds until the first token's logits.")
    decode_tokens_per_s: float | None = Field(None, description="Decode speed after the first token "
                                                                "(tokens per second); None for one token.")
    new_tokens: int | None = Field(None, description="Tokens generated.")
    seconds: float | None = Field(None, description="Seconds of the whole generation (of the turn's mode in a "
                                                    "multi-turn row).")
    peak_memory_bytes: int | None = Field(None, description="Peak memory above the level before the generation "
                                                            "(bytes); None when not measured.")
    memory_method: str | None = Field(None, description="How memory was measured: ``cuda_allocated``, "
                                                        "``rss_peak`` or ``ru_maxrss``.")
    rank: int | None = Field(None, description="The data-parallel rank that computed the row.")
    seed: int | None = Field(None, description="torch's seed before the generation.")
    finished_at: float | None = Field(None, description="When the row was finished (Unix time, seconds).")
    # windowkv multiturn (scbench/kv): one row per turn
    mode: str | None = Field(None, description="``agnostic`` (context compressed alone, one session) or "
                                               "``aware`` (context and question compressed together).")
    turn: int | None = Field(None, description="The turn's index, from 0.")
    kind: str | None = Field(None, description="The turn's kind: ``retrieval``, ``multi_hop`` or ``aggregation``.")
    kv_bytes: int | None = Field(None, description="Bytes of key/value storage the cache held after the turn.")
    context_tokens: int | None = Field(None, description="Tokens of the shared context.")

    @property
    def key(self) -> tuple[str, str, str]:
        """``(id, policy, budget)``: a row already present under this key is not recomputed."""
        return (self.id, self.policy, self.budget)

    @property
    def scored(self) -> bool:
        """Whether the row ran and has a score (not skipped)."""
        return not self.skipped and self.score is not None

    def to_json(self) -> str:
        """The row as one line of ``results.jsonl`` (no new line): the fields that were set, and extras."""
        return json.dumps(self.model_dump(mode="json", exclude_unset=True, fallback=_jsonable),
                          ensure_ascii=False)


def _jsonable(obj: Any) -> Any:
    """JSON for an extra value pydantic cannot serialise (numpy scalars, paths...)."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
