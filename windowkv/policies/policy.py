"""The policy: a composition of scorer, classifier, budget allocator, index sharing and per-task profiles.

A policy is the research code of windowkv. It knows nothing of transformers: given one layer's keys,
a way to compute queries and the padding of each row, :meth:`Policy.select_layer` says which prompt
positions the layer keeps. :meth:`Policy.apply` hands it to the transformers integration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
from pydantic import ValidationError
from torch import Tensor

from windowkv.budget import Budget, ByteCost
from windowkv.errors import ConfigError
from windowkv.policies.config import OPTIONAL_STAGES, PolicyConfig, Profile, build, config_errors
from windowkv.run import CompressionRun, LayerInputs, LayerSelection, ProfileGroup, TaskPrediction
from windowkv.tensor_ops import align_left, mask_to_positions, unalign_left

if TYPE_CHECKING:
    from windowkv.hf.apply import CompressionHandle
    from windowkv.registry import Registries

__all__ = ["Policy", "Profile"]

class Policy(PolicyConfig):
    """A KV-cache compression policy; the defaults are WindowKV with the paper's hyperparameters.

    ``Policy`` is its configuration (the fields of :class:`~windowkv.policies.config.PolicyConfig`,
    validated by pydantic; every field left out takes the ``windowkv`` preset's value) plus the
    compression of one prompt batch (:meth:`start_run`, :meth:`select_layer`) and the lifecycle hooks
    the transformers integration calls. ``Policy(256, sharing=NoSharing())`` and
    ``Policy.model_validate({"budget": 256, "sharing": {"type": "none"}})`` build the same policy.

    Args:
        budget: the average review budget per layer, positional (see :mod:`windowkv.budget`).
        **fields: the other fields of :class:`~windowkv.policies.config.PolicyConfig` (``scorer``,
            ``classifier``, ``allocator``, ``sharing``, ``profiles``, ``merger``, ``quantizer``,
            ``channel_pruner``, ``name``): component instances or their configs.

    Raises:
        ConfigError: a bad argument, naming each bad field's path.
    """

    def __init__(self, budget: int | float | str | Budget | None = None, /, **fields: Any) -> None:
        if budget is not None:
            fields["budget"] = budget
        registries = fields.pop("registries", None)
        try:
            self.__pydantic_validator__.validate_python(fields, self_instance=self,
                                                        context={"registries": registries})
        except ValidationError as exc:
            raise ConfigError(config_errors(exc)) from None

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]  # validation does not call it

    # ------------------------------------------------------------------ configuration

    @classmethod
    def from_config(cls, config: Mapping[str, Any], registries: Registries | None = None,
                    source: str | None = None) -> Policy:
        """Build a policy from a configuration mapping: ``model_validate`` with errors as :class:`ConfigError`.

        ``{"preset": NAME, ...}`` starts from a registered preset; other keys override it (component
        dicts without a new ``type`` update the preset's parameters). Errors name each field's path.
        A config naming a registered whole method (``{method: {type: NAME, ...}}``) builds that method
        instead (a :class:`~windowkv.policies.LayerPolicy`).
        """
        return build(config, cls, registries, source)

    @classmethod
    def from_preset(cls, preset: str, /, budget: int | float | str | None = None, **overrides: Any) -> Policy:
        """A registered preset (e.g. ``"windowkv"``, ``"full"``) with a budget and config overrides."""
        cfg: dict[str, Any] = {"preset": preset, **overrides}
        if budget is not None:
            cfg["budget"] = budget
        return cls.from_config(cfg)

    def with_budget(self, budget: int | float | str | Budget) -> Policy:
        """A copy of this policy with another budget."""
        fields = {key: getattr(self, key) for key in type(self).model_fields if key != "budget"}
        return type(self)(budget, **fields)

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, budget={self.budget})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_config() == other.to_config()

    __hash__ = None  # type: ignore[assignment]

    def check_stages(self, head_dim: int) -> None:
        """Refuse stages after selection that cannot serve this policy on a model with ``head_dim``
        (e.g. a quantizer whose ``group_size`` does not divide the channels a channel pruner keeps).

        Raises:
            ConfigError: one entry per stage, naming the stage, the policy and why.
        """
        errors = []
        for key in OPTIONAL_STAGES:
            stage = getattr(self, key)
            reason = stage.incompatibility(self, head_dim) if stage is not None else None
            if reason:
                errors.append((key, f"{key} {stage.name!r} cannot serve policy {self.name!r}: {reason}"))
        if errors:
            raise ConfigError(errors)

    # ------------------------------------------------------------------ one compression run

    def start_run(self, lengths: Sequence[int], padded_length: int, num_layers: int,
                  texts: Sequence[str | None] | None = None, task: str | None = None,
                  device: torch.device | str = "cpu", cost: ByteCost | None = None) -> CompressionRun:
        """Classify the prompts and plan every layer's budget for one batch.

        Args:
            lengths: true prompt length of each row (tokens, without padding).
            padded_length: ``L``, the length of the (left-padded) batch.
            num_layers: attention layers of the model.
            texts: prompt text of each row, for classifiers that read it.
            task: force this task label for every row (skips the classifier).
            cost: what a kept slot costs in bytes (:func:`windowkv.cache.nbytes.byte_cost`); byte budgets
                need it.
        """
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if any(n < 0 or n > padded_length for n in lengths):
            raise ValueError(f"row lengths {list(lengths)} must lie in [0, {padded_length}]")
        if task is not None:
            if task not in self.profiles:
                raise ConfigError([("task", f"unknown task {task!r}; profiles: {sorted(self.profiles)}")])
            predictions = [TaskPrediction(task, 1.0) for _ in lengths]
        else:
            prompts = list(texts) if texts is not None else [None] * len(lengths)
            predictions = self.classifier(prompts)
        groups = []
        for label, profile in self.profiles.items():
            rows = [i for i, p in enumerate(predictions) if p.label == label]
            if not rows:
                continue
            s = profile.suffix_size
            review = [max(lengths[i] - s, 0) for i in rows]
            suffix = [min(lengths[i], s) for i in rows]
            # an average budget covering the review part keeps everything in every layer, even where
            # the allocator would give a layer less than the average
            scale = profile.budget_scale
            per_row = [self.allocator(avg, num_layers, review_length=n)
                       if (avg := self.budget.average(n, suffix_size=k, cost=cost) * scale) < n
                       else [n] * num_layers for n, k in zip(review, suffix)]
            budgets = [[per_row[i][layer] for i in range(len(rows))] for layer in range(num_layers)]
            groups.append(ProfileGroup(label, rows, s, review, budgets, profile.selector.max_kept))
        leaders = [self.sharing(layer, num_layers) for layer in range(num_layers)]
        return CompressionRun(list(lengths), padded_length, num_layers, groups, predictions, leaders,
                              torch.device(device))

    def select_layer(
        self,
        run: CompressionRun,
        layer_idx: int,
        keys: Tensor,
        values: Tensor,
        key_valid: Tensor,
        project_queries: Callable[[int, int], Tensor],
        scaling: float,
        num_key_value_groups: int,
    ) -> LayerSelection | None:
        """Choose the prompt positions layer ``layer_idx`` keeps; ``None`` when it keeps everything.

        Args:
            run: the run started by :meth:`start_run` for this prompt batch.
            layer_idx: the layer, ``0 <= layer_idx < run.num_layers``.
            keys: ``[B, H_kv, L, D]`` the layer's full prompt keys.
            values: ``[B, H_kv, L, D]`` the layer's full prompt values.
            key_valid: ``[B, L]`` bool, False on left padding.
            project_queries: ``(start, end) -> [B, H_q, end - start, D]`` the layer's queries.
            scaling: the layer's attention scale (usually ``D ** -0.5``).
            num_key_value_groups: query heads per KV head.

        Returns:
            The kept positions ``[B, H, K]`` (``H`` is 1 when all profiles select head-shared) and their
            validity; ``K`` is :meth:`CompressionRun.kept_bound`.
        """
        _check_layer(run, layer_idx, keys, key_valid)
        if not run.layer_needs_scores(layer_idx) and not run.layer_compresses(layer_idx):
            return None
        b, h_kv, length, _ = keys.shape
        heads = 1 if all(self.profiles[g.label].selector.heads == "shared" for g in run.groups) else h_kv
        keep = torch.zeros(b, heads, length, dtype=torch.bool, device=keys.device)
        offsets_all = torch.tensor(run.offsets(), device=keys.device)
        leader = run.leaders[layer_idx]
        for gi, group in enumerate(run.groups):
            whole_batch = len(group.rows) == b
            rows = slice(None) if whole_batch else torch.tensor(group.rows, device=keys.device)
            compresses = group.compresses(layer_idx)
            scores = run.shared_scores.get((leader, gi))
            if scores is None and (compresses or group.needs_scores(layer_idx, run.leaders)):
                if leader != layer_idx:
                    raise ValueError(
                        f"layer {layer_idx} shares the selection of layer {leader}, which has not been "
                        "selected yet in this run: select layers in the order of policy.sharing.order()"
                    )
                inputs = LayerInputs(
                    layer_idx, run.num_layers, keys[rows], values[rows], key_valid[rows], group.suffix_size,
                    scaling, num_key_value_groups,
                    project_queries if whole_batch else (lambda a, e: project_queries(a, e)[rows]),
                    padded=any(run.lengths[i] < length for i in group.rows),
                )
                scores = align_left(self.scorer(inputs), offsets_all[rows])
                run.shared_scores[(leader, gi)] = scores
            if not compresses:
                keep[rows] = key_valid[rows][:, None, :]
                continue
            s = group.suffix_size
            review = length - s
            offsets = offsets_all[rows]
            lengths = torch.tensor(group.review_lengths, device=keys.device)
            budgets = torch.tensor(group.budgets[layer_idx], device=keys.device)
            selector = self.profiles[group.label].selector
            kept_review = unalign_left(selector(scores, lengths, budgets), offsets)  # [b_g, 1|H_kv, R]
            suffix = key_valid[rows, review:][:, None, :].expand(len(group.rows), kept_review.shape[1], s)
            keep[rows] = torch.cat([kept_review, suffix], dim=-1).expand(-1, heads, -1)
        if not run.layer_compresses(layer_idx):
            return None  # a leader that only scored for its followers
        positions, valid = mask_to_positions(keep, run.kept_bound(layer_idx, heads))
        return LayerSelection(positions, valid)

    # ------------------------------------------------------------------ lifecycle hooks

    @property
    def decode_interval(self) -> int | None:
        """Call :meth:`on_decode_step` every this many decode steps (``None``: never).

        ``decode.interval`` when the policy compresses while decoding; a subclass may set a class attribute.
        """
        return self.decode.interval if self.decode is not None else None

    @property
    def recent_query_window(self) -> int:
        """Compressed layers keep the queries of this many last tokens for decode-time re-scoring
        (:meth:`windowkv.cache.CompressedLayer.recent_attention`); 0 keeps none. ``decode.window`` when
        the policy compresses while decoding; a subclass may set a class attribute."""
        return self.decode.window if self.decode is not None else 0

    @property
    def keeps_compressed_layers(self) -> bool:
        """Whether the cache must become compressed layers even when the prefill evicts nothing (decoding
        evicts later)."""
        return self.decode is not None

    def on_prefill_end(self, run: CompressionRun, cache: Any) -> None:
        """After the prefill compressed every layer of ``cache`` (a transformers ``Cache``).

        ``cache.layers[l]`` is a :class:`~windowkv.cache.CompressedLayer` for each layer of an active run.
        With ``decode``, the prompt is evicted to the decode budget; otherwise a no-op.
        """
        self._evict_to_decode_budget(run, cache)

    def on_decode_step(self, run: CompressionRun | None, cache: Any, step: int) -> None:
        """Every :attr:`decode_interval` decode steps, before the step's forward (``step`` counts from 1).

        Decode-time eviction re-scores ``cache``'s layers here. ``run`` is ``None`` for a cache this
        handle did not prefill (a deep copy). With ``decode``, every layer is evicted back to the decode
        budget (:mod:`windowkv.policies.decode`); otherwise a no-op.
        """
        self._evict_to_decode_budget(run, cache)

    def on_new_turn(self, run: CompressionRun | None, cache: Any, num_new_tokens: int) -> None:
        """Before ``num_new_tokens`` (> 1) new tokens are appended to an already compressed ``cache``
        (a chat continuation, a prefix-cache reuse). No-op."""

    def on_request_end(self, run: CompressionRun | None, cache: Any) -> None:
        """When a ``model.generate`` call that used ``cache`` returns (or on
        :meth:`CompressionHandle.end_request`). No-op."""

    def _evict_to_decode_budget(self, run: CompressionRun | None, cache: Any) -> None:
        if self.decode is None:
            return
        from windowkv.cache import CompressedLayer
        from windowkv.policies.decode import evict_cache

        layers = [layer for layer in getattr(cache, "layers", ()) if isinstance(layer, CompressedLayer)]
        if not layers:
            return
        # a cache this handle did not prefill (a deep copy) has no run: rows count as the padded prompt
        lengths = run.lengths if run is not None else [layers[0].prompt_length] * layers[0].positions.shape[0]
        evict_cache(self.decode, cache, self.decode_budgets(lengths), self.max_suffix_size())

    # ------------------------------------------------------------------ models

    def apply(self, model: Any, tokenizer: Any = None, task: str | None = None,
              layout: str = "auto", prefill_chunk: int | None = None) -> CompressionHandle:
        """Compress ``model``'s KV cache at every prefill while the returned handle is active.

        Use it as a context manager (``with policy.apply(model, tokenizer): model.generate(...)``) or
        call ``.remove()`` on the handle. ``tokenizer`` lets text classifiers read the prompt;
        ``task`` forces a task label instead. ``layout`` is how kept slots are stored: ``"auto"`` (ragged
        when a layer's KV heads keep different numbers of slots), ``"padded"`` or ``"ragged"``.
        ``prefill_chunk=C`` prefills prompts longer than ``C`` tokens in chunks of ``C``, evicting to the budget
        between chunks, so a layer never holds more than budget + suffix + ``C`` slots
        (:mod:`windowkv.hf.chunked`; one prompt at a time).
        """
        from windowkv.hf.apply import CompressionHandle

        return CompressionHandle(self, model, tokenizer=tokenizer, task=task, layout=layout,
                                 prefill_chunk=prefill_chunk)


def _check_layer(run: CompressionRun, layer_idx: int, keys: Tensor, key_valid: Tensor) -> None:
    """Refuse inputs that do not belong to ``run`` (they would be compressed with its offsets)."""
    if not 0 <= layer_idx < run.num_layers:
        raise ValueError(f"layer {layer_idx} is outside the run's {run.num_layers} layers")
    expected = (len(run.lengths), run.padded_length)
    if keys.dim() != 4 or (keys.shape[0], keys.shape[2]) != expected or tuple(key_valid.shape) != expected:
        raise ValueError(
            f"keys {tuple(keys.shape)} and key_valid {tuple(key_valid.shape)} do not match the run's batch "
            f"and prompt length {expected}: start a new run for another prompt"
        )
