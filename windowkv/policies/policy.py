"""The policy: a composition of scorer, classifier, budget allocator, index sharing and per-task profiles.

A policy is the research code of windowkv. It knows nothing of transformers: given one layer's keys,
a way to compute queries and the padding of each row, :meth:`Policy.select_layer` says which prompt
positions the layer keeps. :meth:`Policy.apply` hands it to the transformers integration.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import Tensor

from windowkv.budget import Budget
from windowkv.budgets import ArithmeticGroupBudget, BudgetAllocator
from windowkv.classifiers import KeywordClassifier, TaskClassifier
from windowkv.component import NAME_PATTERN, Component, join_loc
from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.run import CompressionRun, LayerInputs, LayerSelection, ProfileGroup, TaskPrediction
from windowkv.scorers import Scorer, SuffixAttentionScorer
from windowkv.selectors import Selector, WindowAverageSelector, WindowMaxSelector
from windowkv.sharing import GroupSharing, IndexSharing
from windowkv.tensor_ops import align_left, mask_to_positions, unalign_left

if TYPE_CHECKING:
    from windowkv.hf.apply import CompressionHandle
    from windowkv.registry import Registries

#: top-level keys of a policy configuration, besides ``preset``
POLICY_FIELDS = ("name", "budget", "scorer", "classifier", "allocator", "sharing", "profiles")
#: config key -> component kind
COMPONENT_FIELDS = {
    "scorer": "scorer",
    "classifier": "classifier",
    "allocator": "budget",
    "sharing": "sharing",
}


@dataclass(frozen=True)
class Profile:
    """How prompts of one task label are compressed.

    Attributes:
        selector: picks the kept review tokens.
        suffix_size: ``s``, last prompt tokens always kept and whose queries score the rest.
    """

    selector: Selector
    suffix_size: int

    def __post_init__(self) -> None:
        if not isinstance(self.selector, Selector):
            raise ConfigError([("selector", f"expected a Selector, got {type(self.selector).__name__}")])
        if isinstance(self.suffix_size, bool) or not isinstance(self.suffix_size, int) or self.suffix_size < 1:
            raise ConfigError([("suffix_size", f"must be an integer >= 1 (got {self.suffix_size!r})")])

    def to_config(self) -> dict[str, Any]:
        return {"selector": self.selector.to_config(), "suffix_size": self.suffix_size}


def windowkv_profiles() -> dict[str, Profile]:
    """The paper's profiles: ``qa`` (window max, s=32) and ``other`` (window average, s=16)."""
    return {
        "qa": Profile(WindowMaxSelector(window_size=8), 32),
        "other": Profile(WindowAverageSelector(window_size=8), 16),
    }


class Policy:
    """A KV-cache compression policy; the defaults are WindowKV with the paper's hyperparameters.

    Args:
        budget: average review tokens kept per layer (``int``) or fraction of each prompt's review
            tokens (``float`` in ``(0, 1]``); see :mod:`windowkv.budget`.
        scorer: per-token importance (default: suffix attention).
        classifier: prompt -> task label (default: keyword heuristic).
        allocator: per-layer budgets (default: arithmetic groups, G=8, beta=14).
        sharing: which layers reuse a leader's scores (default: groups of 8).
        profiles: task label -> :class:`Profile` (default: ``qa``: window max, s=32;
            ``other``: window average, s=16). Every label of the classifier needs a profile.
        name: a name for tables and result files.
    """

    def __init__(
        self,
        budget: int | float | str | Budget,
        *,
        scorer: Scorer | None = None,
        classifier: TaskClassifier | None = None,
        allocator: BudgetAllocator | None = None,
        sharing: IndexSharing | None = None,
        profiles: Mapping[str, Profile] | None = None,
        name: str = "custom",
    ) -> None:
        errors: list[tuple[str, str]] = []
        try:
            self.budget = Budget.of(budget)
        except ValueError as exc:
            errors.append(("budget", str(exc)))
        self.scorer = scorer if scorer is not None else SuffixAttentionScorer()
        self.classifier = classifier if classifier is not None else KeywordClassifier()
        self.allocator = allocator if allocator is not None else ArithmeticGroupBudget()
        self.sharing = sharing if sharing is not None else GroupSharing()
        self.profiles = dict(profiles) if profiles is not None else windowkv_profiles()
        self.name = name
        for field, base in (("scorer", Scorer), ("classifier", TaskClassifier),
                            ("allocator", BudgetAllocator), ("sharing", IndexSharing)):
            if not isinstance(getattr(self, field), base):
                errors.append((field, f"expected a {base.__name__}, got {type(getattr(self, field)).__name__}"))
        if not self.profiles:
            errors.append(("profiles", "at least one profile is needed"))
        for label, profile in self.profiles.items():
            if not NAME_PATTERN.match(label):
                errors.append((join_loc("profiles", label), f"labels must match {NAME_PATTERN.pattern}"))
            if not isinstance(profile, Profile):
                errors.append((join_loc("profiles", label), "expected a Profile"))
        if isinstance(self.classifier, TaskClassifier):
            missing = [lab for lab in self.classifier.labels() if lab not in self.profiles]
            if missing:
                errors.append(("profiles", f"no profile for the classifier's labels {missing}; "
                               f"profiles: {sorted(self.profiles)}"))
        if errors:
            raise ConfigError(errors)

    # ------------------------------------------------------------------ configuration

    @classmethod
    def from_config(cls, config: Mapping[str, Any], registries: Registries | None = None,
                    source: str | None = None) -> Policy:
        """Build a policy from a configuration dict (see ``docs/reference/config.md``).

        ``{"preset": NAME, ...}`` starts from a registered preset; other keys override it (component
        dicts without a new ``type`` update the preset's parameters). Errors name each field's path.
        """
        if registries is None:
            from windowkv.plugins import default_registries

            registries = default_registries()
        if not isinstance(config, Mapping):
            raise ConfigError([("", f"a policy config is a mapping, got {type(config).__name__}")], source)
        cfg = dict(config)
        errors: list[tuple[str, str]] = []
        if "preset" in cfg:
            try:
                preset = registries["policy"].get(cfg.pop("preset"))
            except UnknownComponentError as exc:
                raise ConfigError([("preset", str(exc))], source) from None
            base = preset.resolved()
            if preset.budget_locked:
                cfg.pop("budget", None)
            cfg = _merge(base, cfg)
        for key in cfg:
            if key not in POLICY_FIELDS:
                errors.append((key, f"unknown field; allowed fields: preset, {', '.join(POLICY_FIELDS)}"))
        if "budget" not in cfg:
            errors.append(("budget", "missing: give tokens (e.g. 256) or a ratio (e.g. 0.25)"))
        else:
            try:
                Budget.of(cfg["budget"])
            except ValueError as exc:
                errors.append(("budget", str(exc)))
        kwargs: dict[str, Any] = {}
        for key, kind in COMPONENT_FIELDS.items():
            if key in cfg:
                kwargs[key] = _resolve_component(registries, kind, cfg[key], key, errors)
        if "profiles" in cfg:
            kwargs["profiles"] = _resolve_profiles(registries, cfg["profiles"], errors)
        if "name" in cfg:
            if not isinstance(cfg["name"], str):
                errors.append(("name", "must be a string"))
            else:
                kwargs["name"] = cfg["name"]
        if errors:
            raise ConfigError(errors, source)
        try:
            return cls(cfg["budget"], **kwargs)
        except ConfigError as exc:
            raise ConfigError(exc.errors, source) from None

    @classmethod
    def from_preset(cls, preset: str, /, budget: int | float | str | None = None, **overrides: Any) -> Policy:
        """A registered preset (e.g. ``"windowkv"``, ``"full"``) with a budget and config overrides."""
        cfg: dict[str, Any] = {"preset": preset, **overrides}
        if budget is not None:
            cfg["budget"] = budget
        return cls.from_config(cfg)

    def to_config(self) -> dict[str, Any]:
        """The complete, normalised description: ``Policy.from_config(p.to_config())`` rebuilds ``p``."""
        return {
            "name": self.name,
            "budget": self.budget.to_config(),
            "scorer": self.scorer.to_config(),
            "classifier": self.classifier.to_config(),
            "allocator": self.allocator.to_config(),
            "sharing": self.sharing.to_config(),
            "profiles": {label: p.to_config() for label, p in self.profiles.items()},
        }

    def with_budget(self, budget: int | float | str | Budget) -> Policy:
        """A copy of this policy with another budget."""
        return type(self)(budget, scorer=self.scorer, classifier=self.classifier, allocator=self.allocator,
                          sharing=self.sharing, profiles=self.profiles, name=self.name)

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, budget={self.budget})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_config() == other.to_config()

    # ------------------------------------------------------------------ one compression run

    def start_run(self, lengths: Sequence[int], padded_length: int, num_layers: int,
                  texts: Sequence[str | None] | None = None, task: str | None = None,
                  device: torch.device | str = "cpu") -> CompressionRun:
        """Classify the prompts and plan every layer's budget for one batch.

        Args:
            lengths: true prompt length of each row (tokens, without padding).
            padded_length: ``L``, the length of the (left-padded) batch.
            num_layers: attention layers of the model.
            texts: prompt text of each row, for classifiers that read it.
            task: force this task label for every row (skips the classifier).
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
            # an average budget covering the review part keeps everything in every layer, even where
            # the allocator would give a layer less than the average
            per_row = [self.allocator(avg, num_layers, review_length=n) if (avg := self.budget.average(n)) < n
                       else [n] * num_layers for n in review]
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

    #: call :meth:`on_decode_step` every this many decode steps (``None``: never)
    decode_interval: ClassVar[int | None] = None
    #: compressed layers keep the queries of this many last tokens for decode-time re-scoring
    #: (:meth:`windowkv.cache.CompressedLayer.recent_attention`); 0 keeps none
    recent_query_window: ClassVar[int] = 0

    def on_prefill_end(self, run: CompressionRun, cache: Any) -> None:
        """After the prefill compressed every layer of ``cache`` (a transformers ``Cache``). No-op.

        ``cache.layers[l]`` is a :class:`~windowkv.cache.CompressedLayer` for each layer of an active run.
        """

    def on_decode_step(self, run: CompressionRun | None, cache: Any, step: int) -> None:
        """Every :attr:`decode_interval` decode steps, before the step's forward (``step`` counts from 1).

        Decode-time eviction re-scores ``cache``'s layers here. ``run`` is ``None`` for a cache this
        handle did not prefill (a deep copy). No-op.
        """

    def on_new_turn(self, run: CompressionRun | None, cache: Any, num_new_tokens: int) -> None:
        """Before ``num_new_tokens`` (> 1) new tokens are appended to an already compressed ``cache``
        (a chat continuation, a prefix-cache reuse). No-op."""

    def on_request_end(self, run: CompressionRun | None, cache: Any) -> None:
        """When a ``model.generate`` call that used ``cache`` returns (or on
        :meth:`CompressionHandle.end_request`). No-op."""

    # ------------------------------------------------------------------ models

    def apply(self, model: Any, tokenizer: Any = None, task: str | None = None) -> CompressionHandle:
        """Compress ``model``'s KV cache at every prefill while the returned handle is active.

        Use it as a context manager (``with policy.apply(model, tokenizer): model.generate(...)``) or
        call ``.remove()`` on the handle. ``tokenizer`` lets text classifiers read the prompt;
        ``task`` forces a task label instead.
        """
        from windowkv.hf.apply import CompressionHandle

        return CompressionHandle(self, model, tokenizer=tokenizer, task=task)


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


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override ``base`` with ``override`` recursively; a dict with a new ``type`` replaces the old one."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = _merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_component(registries: Registries, kind: str, value: Any, loc: str,
                       errors: list[tuple[str, str]]) -> Component | None:
    """``{"type": NAME, **params}`` (or a bare ``NAME``, or an instance) -> component instance."""
    if isinstance(value, Component):
        return value
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping) or "type" not in value:
        errors.append((loc, f"expected {{type: NAME, ...params}}; registered {kind}s: "
                       f"{', '.join(registries[kind].names())}"))
        return None
    params = dict(value)
    name = params.pop("type")
    try:
        cls = registries[kind].get(name)
    except UnknownComponentError as exc:
        errors.append((join_loc(loc, "type"), str(exc)))
        return None
    try:
        return cls.from_params(params, loc)
    except ConfigError as exc:
        errors.extend(exc.errors)
        return None


def _resolve_profiles(registries: Registries, value: Any, errors: list[tuple[str, str]]) -> dict[str, Profile]:
    if not isinstance(value, Mapping) or not value:
        errors.append(("profiles", "expected a non-empty mapping {label: {selector: ..., suffix_size: ...}}"))
        return {}
    out = {}
    for label, spec in value.items():
        loc = join_loc("profiles", label)
        if not isinstance(spec, Mapping):
            errors.append((loc, "expected {selector: {type: NAME, ...}, suffix_size: INT}"))
            continue
        extra = set(spec) - {"selector", "suffix_size"}
        for key in sorted(extra):
            errors.append((join_loc(loc, key), "unknown field; allowed fields: selector, suffix_size"))
        if "selector" not in spec:
            errors.append((join_loc(loc, "selector"), "missing"))
            continue
        selector = _resolve_component(registries, "selector", spec["selector"], join_loc(loc, "selector"), errors)
        suffix = spec.get("suffix_size", 32)
        if isinstance(suffix, bool) or not isinstance(suffix, int) or suffix < 1:
            errors.append((join_loc(loc, "suffix_size"), f"must be an integer >= 1 (got {suffix!r})"))
            continue
        if selector is not None:
            out[str(label)] = Profile(selector, suffix)
    return out
