"""Helpers for testing windowkv components and plugins: windowkv's ``pytester``.

A plugin author checks a new component against its contract in one line::

    from windowkv.testing import check_scorer_contract
    from my_package import MyScorer

    def test_my_scorer_keeps_the_contract():
        check_scorer_contract(MyScorer())

Every ``check_*`` function raises :class:`AssertionError` naming the broken rule (never ``assert``
statements, so the checks also run under ``python -O``). windowkv's own test suite calls the same
functions for every registered component, so a plugin's components are held to exactly the rules the
built-ins are.

Besides the contract checks, the module offers synthetic inputs (:func:`random_scores`,
:func:`synthetic_layer`), a way to run a policy over every layer (:func:`run_policy`), the checks of
one layer's selection against the budget invariants of ``DESIGN.md`` (:func:`check_layer_selection`),
and :func:`fresh_registries`, which builds registries from given plugin modules without entry points.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from pydantic import ValidationError
from torch import Tensor

from windowkv.allocators import BudgetAllocator
from windowkv.classifiers import TaskClassifier
from windowkv.component import Component
from windowkv.errors import PluginLoadWarning
from windowkv.policies import Policy
from windowkv.registry import Registries
from windowkv.run import CompressionRun, LayerInputs, LayerSelection
from windowkv.scorers import Scorer
from windowkv.selectors import Selector, WindowSelector
from windowkv.sharing import IndexSharing

if TYPE_CHECKING:
    from windowkv.eval.metrics import Metric
    from windowkv.eval.tasks import Task
    from windowkv.channel_pruners import ChannelPruner
    from windowkv.mergers import MergedSlots, Merger, MergeInputs
    from windowkv.quantizers import Quantizer

__all__ = [
    "SyntheticLayer",
    "check_allocator_contract",
    "check_channel_pruner_contract",
    "check_classifier_contract",
    "check_merged_slots",
    "check_merger_contract",
    "check_pruned_channels",
    "check_quantized",
    "check_quantizer_contract",
    "check_component_config",
    "check_layer_budget",
    "check_layer_positions",
    "check_layer_selection",
    "check_scorer_contract",
    "check_selector_contract",
    "check_sharing_contract",
    "check_metric_contract",
    "check_task_contract",
    "fresh_registries",
    "small_tokenizer",
    "kept_positions",
    "layer_order",
    "make_component",
    "merge_inputs",
    "random_scores",
    "run_policy",
    "synthetic_layer",
]


def _fail(message: str) -> None:
    raise AssertionError(message)


# ---------------------------------------------------------------------------------------------------
# Registries and components
# ---------------------------------------------------------------------------------------------------


def fresh_registries(
    *plugins: ModuleType | object,
    builtins: bool = True,
    distributions: dict[str, tuple[str, str | None]] | None = None,
) -> Registries:
    """Registries built from the given plugin modules (or objects) only, without entry points.

    Args:
        plugins: modules or objects with ``@windowkv.hookimpl`` functions, registered in order.
        builtins: register windowkv's built-in plugin first (as ``builtins``, distribution ``windowkv``).
        distributions: plugin name -> ``(distribution, version)`` to report as provider. A plugin's
            name is its module's ``__name__`` (or ``repr`` of an object).

    Raises:
        ComponentConflictError: two plugins register one name for one kind.
    """
    import pluggy

    from windowkv.plugins import hookspecs
    from windowkv.plugins import builtins as builtin_plugin
    from windowkv.plugins.manager import PluginSet, build_registries

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugin_set = PluginSet(pm)
    if builtins:
        pm.register(builtin_plugin, name="builtins")
        plugin_set.distributions["builtins"] = ("windowkv", _windowkv_version())
    plugin_set.distributions.update(distributions or {})
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or repr(plugin)
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # e.g. a hook declaring an argument its spec does not have
            dist = plugin_set.distributions.get(name, ("?", None))[0]
            plugin_set.errors.append(f"windowkv plugin {name!r} ({dist}) failed to load: {type(exc).__name__}: {exc}")
            warnings.warn(plugin_set.errors[-1], PluginLoadWarning, stacklevel=2)
    return build_registries(plugin_set)


def _windowkv_version() -> str | None:
    import windowkv

    return getattr(windowkv, "__version__", None)


def make_component(cls: type[Component], /, **params: Any) -> Component:
    """An instance of ``cls`` with those of ``params`` it declares and accepts; defaults for the rest.

    Lets one test drive every registered component with the same drawn parameters (``window_size``,
    ``group_size``, ...): parameters the class does not declare are ignored, and a parameter the class
    rejects (e.g. ``window_size=8`` for a token selector) falls back to its default.
    """
    params = {k: v for k, v in params.items() if k in cls.model_fields}
    while True:
        try:
            return cls(**params)
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in params}
            if not params:
                raise
            params = {k: v for k, v in params.items() if k not in bad} if bad else {}


def check_component_config(component: Component) -> None:
    """``to_config()`` is complete, JSON-friendly and rebuilds an equal component."""
    import json

    cfg = component.to_config()
    if cfg.get("type") != component.name:
        _fail(f"{component!r}.to_config() has type {cfg.get('type')!r}, expected {component.name!r}")
    try:
        json.loads(json.dumps(cfg))
    except TypeError as exc:
        _fail(f"{component!r}.to_config() is not JSON-serialisable: {exc}")
    params = {k: v for k, v in cfg.items() if k != "type"}
    rebuilt = type(component).from_params(params)
    if rebuilt != component:
        _fail(f"{type(component).__name__}.from_params(to_config()) gave {rebuilt!r}, expected {component!r}")


# ---------------------------------------------------------------------------------------------------
# Synthetic inputs
# ---------------------------------------------------------------------------------------------------


def random_scores(batch: int, heads: int, length: int, *, seed: int = 0, ties: bool = False) -> Tensor:
    """``[batch, heads, length]`` float32 scores in ``[0, 1)``, as a scorer would return.

    With ``ties=True`` the scores take only four values, so selectors must break ties.
    """
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(batch, heads, length, generator=g)
    return (scores * 4).floor() / 4 if ties else scores


@dataclass(frozen=True)
class SyntheticLayer:
    """One layer's prefill inputs with left padding, as the transformers integration hands them over.

    Attributes:
        keys, values: ``[B, H_kv, L, D]``; padding positions hold large random values (never to be used).
        queries: ``[B, H_q, L, D]``, ``H_q = H_kv * num_key_value_groups``.
        key_valid: ``[B, L]`` bool, False on left padding.
        lengths: true length of each row.
    """

    keys: Tensor
    values: Tensor
    queries: Tensor
    key_valid: Tensor
    lengths: tuple[int, ...]
    num_key_value_groups: int

    @property
    def padded_length(self) -> int:
        return self.keys.shape[2]

    @property
    def scaling(self) -> float:
        return self.keys.shape[-1] ** -0.5

    def offsets(self) -> list[int]:
        return [self.padded_length - n for n in self.lengths]

    def project_queries(self, start: int, end: int) -> Tensor:
        """``[B, H_q, end - start, D]``, the queries of positions ``[start, end)``."""
        if not 0 <= start <= end <= self.padded_length:
            raise ValueError(f"query range [{start}, {end}) outside [0, {self.padded_length}]")
        return self.queries[:, :, start:end]

    def row(self, index: int) -> SyntheticLayer:
        """Row ``index`` alone, without its padding (what the row would be as a batch of one)."""
        start = self.padded_length - self.lengths[index]
        sl = slice(index, index + 1)
        return SyntheticLayer(
            self.keys[sl, :, start:], self.values[sl, :, start:], self.queries[sl, :, start:],
            self.key_valid[sl, start:], (self.lengths[index],), self.num_key_value_groups,
        )

    def select(self, policy: Policy, run: CompressionRun, layer_idx: int) -> LayerSelection | None:
        """``policy.select_layer`` on this layer."""
        return policy.select_layer(
            run, layer_idx, self.keys, self.values, self.key_valid, self.project_queries, self.scaling,
            self.num_key_value_groups,
        )

    def inputs(self, layer_idx: int = 0, num_layers: int = 1, suffix_size: int = 4) -> LayerInputs:
        """The :class:`LayerInputs` a scorer sees for this layer."""
        return LayerInputs(
            layer_idx, num_layers, self.keys, self.values, self.key_valid, suffix_size, self.scaling,
            self.num_key_value_groups, self.project_queries,
        )


def synthetic_layer(
    lengths: Sequence[int],
    *,
    padded_length: int | None = None,
    kv_heads: int = 2,
    query_groups: int = 1,
    head_dim: int = 8,
    seed: int = 0,
) -> SyntheticLayer:
    """Random keys, values and queries for a left-padded batch with the given row lengths.

    Args:
        lengths: true length of each row (0 for a padding-only row).
        padded_length: ``L`` (default: the longest row).
        kv_heads, query_groups, head_dim: ``H_kv``, query heads per KV head, ``D``.
        seed: the data is a function of the seed only.
    """
    lengths = tuple(int(n) for n in lengths)
    size = max(lengths, default=0) if padded_length is None else padded_length
    if any(n < 0 or n > size for n in lengths):
        raise ValueError(f"row lengths {lengths} must lie in [0, {size}]")
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    shape = (b, kv_heads, size, head_dim)
    key_valid = torch.arange(size)[None, :] >= torch.tensor([size - n for n in lengths], dtype=torch.long)[:, None]
    garbage = 50.0 * torch.randn(shape, generator=g) + 20.0
    keys = torch.where(key_valid[:, None, :, None], torch.randn(shape, generator=g), garbage)
    values = torch.where(key_valid[:, None, :, None], torch.randn(shape, generator=g), garbage)
    queries = torch.randn(b, kv_heads * query_groups, size, head_dim, generator=g) * 2.0
    return SyntheticLayer(keys, values, queries, key_valid, lengths, query_groups)


def layer_order(sharing: IndexSharing, num_layers: int) -> list[int]:
    """The order in which a run selects its layers: ``sharing.order(num_layers)`` where the strategy
    defines one (leaders may follow their followers), else ``0 .. num_layers - 1``."""
    order = getattr(sharing, "order", None)
    return list(order(num_layers)) if callable(order) else list(range(num_layers))


def run_policy(
    policy: Policy,
    layers: Sequence[SyntheticLayer],
    *,
    texts: Sequence[str | None] | None = None,
    task: str | None = None,
) -> tuple[CompressionRun, list[LayerSelection | None]]:
    """One compression run over ``layers`` (one :class:`SyntheticLayer` per model layer), selecting the
    layers in :func:`layer_order`; returns the selections by layer index."""
    first = layers[0]
    run = policy.start_run(first.lengths, first.padded_length, len(layers), texts=texts, task=task)
    selections: list[LayerSelection | None] = [None] * len(layers)
    for i in layer_order(policy.sharing, len(layers)):
        selections[i] = layers[i].select(policy, run, i)
    return run, selections


# ---------------------------------------------------------------------------------------------------
# Reading and checking selections
# ---------------------------------------------------------------------------------------------------


def kept_positions(selection: LayerSelection | None, row: int, head: int, length: int) -> list[int]:
    """Valid kept prompt positions of one row and head (padded coordinates, in slot order).

    ``selection=None`` (the layer keeps everything) gives ``range(length)``: the caller removes the
    row's padding. ``head`` is clamped for head-shared selections (``H = 1``).
    """
    if selection is None or selection.positions is None:
        return list(range(length))
    h = min(head, selection.positions.shape[1] - 1)
    pos = selection.positions[row, h]
    return pos[selection.valid[row, h]].tolist()


@dataclass(frozen=True)
class RowPlan:
    """What one row of a run may keep in one layer."""

    label: str
    suffix_size: int
    review_length: int
    budget: int
    offset: int
    length: int


def max_kept(selector: Selector, budget: int, length: int, heads: int) -> int:
    """The most review tokens one head of ``selector`` may keep: its ``max_kept`` where it defines one
    (head-wise adaptive selectors), else ``min(budget, length)``."""
    method = getattr(selector, "max_kept", None)
    return int(method(budget, length, heads)) if callable(method) else min(budget, length)


def row_plan(run: CompressionRun, row: int, layer_idx: int) -> RowPlan:
    """The label, suffix, review length, budget and padding offset of ``row`` at ``layer_idx``."""
    for group in run.groups:
        if row in group.rows:
            i = group.rows.index(row)
            return RowPlan(group.label, group.suffix_size, group.review_lengths[i], group.budgets[layer_idx][i],
                           run.padded_length - run.lengths[row], run.lengths[row])
    raise AssertionError(f"row {row} belongs to no profile group of the run")


def _layer_rows(
    policy: Policy, run: CompressionRun, layer_idx: int, selection: LayerSelection | None, kv_heads: int,
) -> Iterable[tuple[int, str, RowPlan, Selector, list[int], int]]:
    """Check the selection's shapes; yield ``(row, where, plan, selector, kept positions, review end)``."""
    b = len(run.lengths)
    if selection is not None:
        pos, valid = selection.positions, selection.valid
        if pos is None:
            _fail(f"layer {layer_idx}: LayerSelection.positions is None; return None to keep everything")
        if pos.dim() != 3 or pos.shape[0] != b or pos.shape[1] not in (1, kv_heads) or valid.shape != pos.shape:
            _fail(f"layer {layer_idx}: positions {tuple(pos.shape)} / valid {tuple(valid.shape)}: "
                  f"expected [B={b}, 1|{kv_heads}, K]")
        if pos.dtype != torch.long or valid.dtype != torch.bool:
            _fail(f"layer {layer_idx}: positions must be long and valid bool (got {pos.dtype}, {valid.dtype})")
    for row in range(b):
        plan = row_plan(run, row, layer_idx)
        selector = policy.profiles[plan.label].selector
        for head in range(kv_heads):
            if selection is None:
                p = list(range(plan.offset, run.padded_length))
            else:
                p = kept_positions(selection, row, head, run.padded_length)
            where = (f"layer {layer_idx}, row {row} ({plan.label}, length {plan.length}, offset {plan.offset}, "
                     f"suffix {plan.suffix_size}, budget {plan.budget}), head {head}")
            yield row, where, plan, selector, p, run.padded_length - plan.suffix_size


def check_layer_budget(
    policy: Policy, run: CompressionRun, layer_idx: int, selection: LayerSelection | None, kv_heads: int,
) -> list[list[int]]:
    """Invariant 1: every row keeps at most ``min(b_l, L_review)`` review tokens per head, plus the
    whole valid suffix; all review tokens when the budget suffices (``None``: everything kept).

    A head-wise adaptive selector (AdaKV) may move budget between the heads of a row: then each head
    keeps at most the selector's ``max_kept(b_l, L_review, heads)`` and the row at most
    ``heads x min(b_l, L_review)`` over its heads.

    Returns:
        ``kept[row][head]``: the number of review tokens kept.
    """
    kept: list[list[int]] = [[] for _ in run.lengths]
    for row in range(len(run.lengths)):
        plan = row_plan(run, row, layer_idx)
        if selection is None and plan.budget < plan.review_length:
            _fail(f"layer {layer_idx} kept everything (None), but row {row} has budget {plan.budget} < "
                  f"{plan.review_length} review tokens")
    for row, where, plan, selector, p, review_end in _layer_rows(policy, run, layer_idx, selection, kv_heads):
        suffix = set(range(max(review_end, plan.offset), run.padded_length))
        missing = sorted(suffix - set(p))
        if missing:
            _fail(f"{where}: suffix positions {missing} were evicted")
        review = [q for q in p if q < review_end]
        heads = 1 if selector.heads == "shared" else kv_heads
        allowed = max_kept(selector, plan.budget, plan.review_length, heads)
        if len(review) > allowed:
            _fail(f"{where}: kept {len(review)} review tokens > {allowed} (budget {plan.budget}, review "
                  f"{plan.review_length})")
        if plan.budget >= plan.review_length and len(review) != plan.review_length:
            _fail(f"{where}: the budget suffices for all {plan.review_length} review tokens, but kept {len(review)}")
        kept[row].append(len(review))
    for row, counts in enumerate(kept):
        plan = row_plan(run, row, layer_idx)
        if sum(counts) > len(counts) * min(plan.budget, plan.review_length):
            _fail(f"layer {layer_idx}, row {row}: {sum(counts)} review tokens over {len(counts)} heads > "
                  f"{len(counts)} x min(budget {plan.budget}, review {plan.review_length})")
    return kept


def check_layer_positions(
    policy: Policy, run: CompressionRun, layer_idx: int, selection: LayerSelection | None, kv_heads: int,
) -> None:
    """Invariant 3: kept positions are unique, sorted over the valid slots and inside the row's real
    tokens; a :class:`WindowSelector` keeps whole windows aligned to the row's first real token (the
    last window may be shorter) and fills its budget to within one window.
    """
    for _, where, plan, selector, p, review_end in _layer_rows(policy, run, layer_idx, selection, kv_heads):
        if p != sorted(set(p)):
            _fail(f"{where}: kept positions are not unique and sorted: {p}")
        if p and (p[0] < plan.offset or p[-1] >= run.padded_length):
            _fail(f"{where}: kept positions {p} leave the row's tokens [{plan.offset}, {run.padded_length})")
        if not isinstance(selector, WindowSelector):
            continue
        w = selector.window_size
        aligned = {q - plan.offset for q in p if q < review_end}
        for a in sorted(aligned):
            start = a - a % w
            window = set(range(start, min(start + w, plan.review_length)))
            if not window <= aligned:
                _fail(f"{where}: window [{start}, {start + w}) (aligned to the row's first token) kept "
                      f"partially: {sorted(window & aligned)}")
        allowed = min(plan.budget, plan.review_length)
        if len(aligned) < allowed - (w - 1):
            _fail(f"{where}: kept only {len(aligned)} review tokens with budget {allowed} and windows of {w}: "
                  "a window selector fills its budget to within one window")


def check_layer_selection(
    policy: Policy, run: CompressionRun, layer_idx: int, selection: LayerSelection | None, kv_heads: int,
) -> list[list[int]]:
    """:func:`check_layer_budget` and :func:`check_layer_positions`; returns the kept review counts."""
    kept = check_layer_budget(policy, run, layer_idx, selection, kv_heads)
    check_layer_positions(policy, run, layer_idx, selection, kv_heads)
    return kept


# ---------------------------------------------------------------------------------------------------
# Contract checks
# ---------------------------------------------------------------------------------------------------


def _selector_cases(seed: int) -> Iterable[tuple[str, Tensor, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    yield "one row, tight budget", random_scores(1, 2, 40, seed=seed), torch.tensor([40]), torch.tensor([10])
    yield "ties", random_scores(2, 2, 33, seed=seed, ties=True), torch.tensor([33, 20]), torch.tensor([9, 20])
    yield "budget 0", random_scores(2, 1, 16, seed=seed), torch.tensor([16, 5]), torch.tensor([0, 0])
    yield "budget >= length", random_scores(2, 3, 24, seed=seed), torch.tensor([24, 7]), torch.tensor([24, 100])
    yield "empty rows", random_scores(3, 2, 12, seed=seed), torch.tensor([0, 12, 1]), torch.tensor([4, 4, 4])
    yield "no review tokens", random_scores(2, 2, 0, seed=seed), torch.tensor([0, 0]), torch.tensor([3, 0])
    for i in range(4):
        r = int(torch.randint(1, 120, (), generator=g))
        b = int(torch.randint(1, 5, (), generator=g))
        lengths = torch.randint(0, r + 1, (b,), generator=g)
        budgets = torch.randint(0, r + 2, (b,), generator=g)
        yield f"random {i}", random_scores(b, 2, r, seed=seed + i), lengths, budgets


def check_selector_contract(selector: Selector | type[Selector], *, seed: int = 0) -> None:
    """A selector keeps at most ``budget`` valid tokens per row and head (a head-wise adaptive selector:
    its ``max_kept`` per head and ``H x budget`` per row), everything when the budget suffices, nothing
    beyond a row's length, returns ``[B, 1 | H, R]`` bool, is deterministic, and (for
    :class:`WindowSelector`) keeps whole windows and fills its budget to within one window.
    """
    if isinstance(selector, type):
        selector = selector()
    check_component_config(selector)
    for case, scores, lengths, budgets in _selector_cases(seed):
        keep = selector(scores, lengths, budgets)
        raw = selector.select(scores, lengths, budgets)
        again = selector(scores.clone(), lengths.clone(), budgets.clone())
        where = f"{selector!r} on {case} (lengths {lengths.tolist()}, budgets {budgets.tolist()})"
        heads = 1 if selector.heads == "shared" else scores.shape[1]
        if keep.dtype != torch.bool or tuple(keep.shape) != (scores.shape[0], heads, scores.shape[2]):
            _fail(f"{where}: returned {keep.dtype} {tuple(keep.shape)}")
        if not torch.equal(keep, again):
            _fail(f"{where}: two calls on the same input disagree")
        for row in range(scores.shape[0]):
            n, budget = int(lengths[row]), int(budgets[row])
            for head in range(heads):
                kept = keep[row, head].nonzero().flatten().tolist()
                if kept and kept[-1] >= n:
                    _fail(f"{where}: row {row} head {head} keeps {kept[-1]} >= its length {n}")
                if len(kept) > max_kept(selector, budget, n, heads):
                    _fail(f"{where}: row {row} head {head} keeps {len(kept)} > budget {budget} "
                          f"(max_kept {max_kept(selector, budget, n, heads)})")
                proposed = int(raw[row, head, :n].sum())
                if proposed > max_kept(selector, budget, n, heads):
                    _fail(f"{where}: select() proposes {proposed} tokens for row {row} head {head} > budget "
                          f"{budget} (max_kept {max_kept(selector, budget, n, heads)}); calling the selector "
                          "clips them, but select() should keep to its budget")
                if budget >= n and len(kept) != n:
                    _fail(f"{where}: row {row} head {head} keeps {len(kept)} of {n} though the budget {budget} suffices")
                if isinstance(selector, WindowSelector):
                    w = selector.window_size
                    for a in kept:
                        window = set(range(a - a % w, min(a - a % w + w, n)))
                        if not window <= set(kept):
                            _fail(f"{where}: row {row} head {head} keeps window {sorted(window)} partially")
                    if len(kept) < min(budget, n) - (w - 1):
                        _fail(f"{where}: row {row} head {head} keeps {len(kept)} with budget {budget} "
                              f"(windows of {w})")
            total = int(keep[row].sum())
            if total > heads * min(budget, n):
                _fail(f"{where}: row {row} keeps {total} tokens over {heads} heads > {heads} x budget {budget}")


def check_scorer_contract(scorer: Scorer | type[Scorer], *, seed: int = 0, atol: float = 1e-5) -> None:
    """A scorer returns finite float32 ``[B, H_kv, L - s]`` scores, deterministic, and a left-padded
    row scores its real tokens as it would alone (padding never leaks into real tokens' scores).
    Scores are compared after shifting each row by its padding, with a tolerance of ``atol`` relative
    to the row's largest score.
    """
    if isinstance(scorer, type):
        scorer = scorer()
    check_component_config(scorer)
    for lengths, s, groups in (((37, 20, 5), 4, 2), ((9,), 9, 1), ((64, 64), 16, 3), ((12, 0), 3, 1)):
        layer = synthetic_layer(lengths, kv_heads=2, query_groups=groups, seed=seed)
        scores = scorer(layer.inputs(suffix_size=s))
        where = f"{scorer!r} on lengths {lengths}, suffix {s}"
        r = max(layer.padded_length - s, 0)
        if scores.dtype != torch.float32 or tuple(scores.shape) != (len(lengths), 2, r):
            _fail(f"{where}: returned {scores.dtype} {tuple(scores.shape)}, expected float32 {(len(lengths), 2, r)}")
        if not torch.equal(scores, scorer(layer.inputs(suffix_size=s))):
            _fail(f"{where}: two calls on the same input disagree")
        for row, n in enumerate(lengths):
            if n <= s:
                continue
            offset = layer.padded_length - n
            batched = scores[row, :, offset:]
            if not torch.isfinite(batched).all():
                _fail(f"{where}: row {row} has non-finite scores on real tokens")
            alone = scorer(layer.row(row).inputs(suffix_size=s))[0]
            tol = atol * max(float(alone.abs().max()), 1.0)
            if not torch.allclose(batched, alone, atol=tol, rtol=0):
                diff = float((batched - alone).abs().max())
                _fail(f"{where}: row {row} scores differ from the row alone by {diff:.3g} (padding leaks)")


def check_sharing_contract(sharing: IndexSharing | type[IndexSharing], *, max_layers: int = 48) -> None:
    """For every model depth up to ``max_layers``: every layer's leader is a layer of the model that
    leads itself, the answer is deterministic, and :func:`layer_order` visits every layer once with
    each leader before its followers.
    """
    if isinstance(sharing, type):
        sharing = sharing()
    check_component_config(sharing)
    for n in range(1, max_layers + 1):
        for layer in range(n):
            leader = sharing(layer, n)
            where = f"{sharing!r} with {n} layers, layer {layer}"
            if not isinstance(leader, int) or not 0 <= leader < n:
                _fail(f"{where}: leader {leader!r} is not a layer of the model")
            if sharing(leader, n) != leader:
                _fail(f"{where}: leader {leader} does not lead itself (leader {sharing(leader, n)})")
            if sharing(layer, n) != leader:
                _fail(f"{where}: not deterministic")
        order = layer_order(sharing, n)
        if sorted(order) != list(range(n)):
            _fail(f"{sharing!r} with {n} layers: the layer order {order} does not visit every layer once")
        seen: set[int] = set()
        for layer in order:
            if sharing(layer, n) not in seen | {layer}:
                _fail(f"{sharing!r} with {n} layers: layer {layer} comes before its leader in {order}")
            seen.add(layer)


def check_allocator_contract(
    allocator: BudgetAllocator | type[BudgetAllocator],
    *,
    averages: Iterable[float] = (0.0, 0.4, 1.0, 7.0, 31.5, 128.0, 1000.25, 2048.0),
    layer_counts: Iterable[int] = (1, 2, 7, 8, 9, 16, 30, 32, 40, 80),
) -> None:
    """Budgets are ``num_layers`` non-negative ints and ``sum <= num_layers * average`` exactly."""
    from fractions import Fraction

    if isinstance(allocator, type):
        allocator = allocator()
    check_component_config(allocator)
    for average in averages:
        for n in layer_counts:
            budgets = allocator(average, n)
            where = f"{allocator!r} with average {average} over {n} layers"
            if len(budgets) != n or any(not isinstance(x, int) or x < 0 for x in budgets):
                _fail(f"{where}: budgets {budgets} are not {n} non-negative ints")
            if sum(budgets) > Fraction(average) * n:
                _fail(f"{where}: total {sum(budgets)} > {n} x {average}")
            if not math.isfinite(sum(budgets)):
                _fail(f"{where}: non-finite total")


# ---------------------------------------------------------------------------------------------------
# Contract checks of the stages after selection: mergers, quantizers, channel pruners
# ---------------------------------------------------------------------------------------------------


def merge_inputs(lengths: Sequence[int], kept: int, *, kv_heads: int = 2, shared: bool = False, head_dim: int = 8,
                 seed: int = 0, query_groups: int = 2, suffix_size: int = 4) -> MergeInputs:
    """A left-padded layer (:func:`synthetic_layer`) and a selection of it: per row and head, up to
    ``kept`` random real positions (always the row's last one, as the suffix is always kept), sorted,
    unused slots invalid; the queries of the last ``suffix_size`` positions (``query_groups`` query heads per
    KV head) come along for mergers that weigh tokens by attention."""
    from windowkv.mergers import MergeInputs

    layer = synthetic_layer(lengths, kv_heads=kv_heads, head_dim=head_dim, seed=seed, query_groups=query_groups)
    g = torch.Generator().manual_seed(seed + 1)
    b, size, heads = len(lengths), layer.padded_length, 1 if shared else kv_heads
    noise = torch.rand(b, heads, size, generator=g).masked_fill(~layer.key_valid[:, None, :], -1.0)
    if size:  # the last position of every non-empty row is kept
        noise[:, :, size - 1] = torch.where(layer.key_valid[:, None, size - 1], 2.0, -1.0)
    k = min(kept, size)
    top = noise.topk(k, dim=-1)
    valid = top.values >= 0
    positions = torch.where(valid, top.indices, 0)
    order = torch.where(valid, positions, size).sort(dim=-1)
    queries = layer.queries[:, :, size - min(suffix_size, size):]
    return MergeInputs(layer.keys, layer.values, positions.gather(-1, order.indices),
                       valid.gather(-1, order.indices), layer.key_valid, queries, head_dim ** -0.5)


def check_merger_contract(merger: Merger | type[Merger], *, seed: int = 0) -> None:
    """A merger returns ``[B, H_kv, K, D]`` keys and values and float32 weights ``[B, H_kv, K]``: 0 on
    invalid slots, at least 1 on valid ones (finite and positive for vote weights, ``weights_are_counts =
    False``); a counting merger that merges every evicted token (``merges_all``) has weights summing to the
    row's valid prompt tokens, one that may drop tokens at most that many; an unmerged kept slot holds its
    token's key and value exactly; it is deterministic and keeps working with head-shared selections and
    empty rows.
    """
    if isinstance(merger, type):
        merger = merger()
    check_component_config(merger)
    for lengths, kept, shared in (((20, 7, 0), 5, False), ((9,), 9, True), ((33, 33), 1, False), ((12, 3), 4, True)):
        inputs = merge_inputs(lengths, kept, shared=shared, seed=seed)
        out = merger(inputs)
        where = f"{merger!r} on lengths {lengths}, {kept} slots{' (head-shared)' if shared else ''}"
        again = merger(inputs)
        if not (torch.equal(out.keys, again.keys) and torch.equal(out.weights, again.weights)):
            _fail(f"{where}: two calls on the same input disagree")
        check_merged_slots(merger, inputs, out, where)


def check_merged_slots(merger: Merger, inputs: MergeInputs, out: MergedSlots, where: str = "") -> None:
    """The value rules of :func:`check_merger_contract` for one call's result."""
    b, h_kv, _, _ = inputs.keys.shape
    k = inputs.positions.shape[-1]
    valid = inputs.valid.expand(b, h_kv, k)
    positions = inputs.positions.expand(b, h_kv, k)
    w = out.weights
    if out.keys.shape != (b, h_kv, k, inputs.keys.shape[-1]) or w.shape != (b, h_kv, k) or w.dtype != torch.float32:
        _fail(f"{where}: shapes {tuple(out.keys.shape)} / weights {w.dtype} {tuple(w.shape)}")
    if (w[~valid] != 0).any():
        _fail(f"{where}: weights {w.tolist()} are not 0 on invalid slots")
    if merger.weights_are_counts and (w[valid] < 1).any():
        _fail(f"{where}: weights {w.tolist()} are not >= 1 on valid slots")
    if not merger.weights_are_counts and not ((w[valid] > 0) & w[valid].isfinite()).all():
        _fail(f"{where}: votes {w.tolist()} are not finite and > 0 on valid slots")
    tokens = inputs.key_valid.sum(-1).tolist()
    for row in range(b):
        for head in range(h_kv):
            total = float(w[row, head].sum())
            slots = int(valid[row, head].sum())
            if merger.weights_are_counts and merger.merges_all and slots and abs(total - tokens[row]) > 1e-3:
                _fail(f"{where}: row {row} head {head}: weights sum to {total}, but the row has {tokens[row]} "
                      "prompt tokens (a merged slot's weight is the number of tokens it stands for)")
            if merger.weights_are_counts and not merger.merges_all and not slots - 1e-3 <= total <= tokens[row] + 1e-3:
                _fail(f"{where}: row {row} head {head}: weights sum to {total}, outside [{slots} kept slots, "
                      f"{tokens[row]} prompt tokens]")
            ones = valid[row, head] & (w[row, head] == 1)
            kept_keys = inputs.keys[row, head, positions[row, head][ones]]
            if not torch.allclose(out.keys[row, head][ones].float(), kept_keys.float(), atol=1e-5):
                _fail(f"{where}: row {row} head {head}: a slot of weight 1 does not hold its token's key")


def check_quantizer_contract(quantizer: Quantizer | type[Quantizer], *, seed: int = 0) -> None:
    """Quantized data is ``uint8`` packed exactly (``data.numel() * 8 == numel * bits``; ``nbytes`` counts
    the data, scales and zero points), dequantizing restores shape and dtype with an error of at most half
    a quantization step (``scale / 2``) per group, and a last dimension that is not a multiple of
    ``group_size`` is refused with a clear error.
    """
    if isinstance(quantizer, type):
        quantizer = quantizer()
    check_component_config(quantizer)
    g = torch.Generator().manual_seed(seed)
    gs = quantizer.group_size
    for shape, dtype in (((2, 3, 5, 2 * gs), torch.float32), ((1, gs), torch.float16), ((4, 1, 3 * gs), torch.bfloat16)):
        x = (torch.randn(shape, generator=g) * 3).to(dtype)
        check_quantized(quantizer, x, f"{quantizer!r} on {dtype} {shape}")
    x = torch.randn(2, gs + 1 if gs > 1 else 3, generator=g)
    if x.shape[-1] % gs:
        try:
            quantizer.quantize(x)
        except ValueError as exc:
            if "group_size" not in str(exc):
                _fail(f"{quantizer!r}: the error for a last dimension of {x.shape[-1]} does not name group_size: {exc}")
        else:
            _fail(f"{quantizer!r} accepted a last dimension of {x.shape[-1]} with group_size {gs}")


def check_quantized(quantizer: Quantizer, x: Tensor, where: str = "") -> None:
    """The packing, byte count and error bound of one :meth:`Quantizer.quantize` call."""
    q = quantizer.quantize(x)
    if q.data.dtype != torch.uint8 or q.data.numel() * 8 != x.numel() * quantizer.bits:
        _fail(f"{where}: {q.data.numel()} {q.data.dtype} data elements for {x.numel()} values at {quantizer.bits} bits")
    held = sum(t.numel() * t.element_size() for t in (q.data, q.scale, q.zero))
    if q.nbytes != held:
        _fail(f"{where}: nbytes {q.nbytes} != {held} bytes held")
    y = quantizer.dequantize(q)
    if y.shape != x.shape or y.dtype != x.dtype:
        _fail(f"{where}: dequantized {y.dtype} {tuple(y.shape)}")
    groups = x.shape[-1] // quantizer.group_size
    error = (y.float() - x.float()).abs().reshape(*x.shape[:-1], groups, quantizer.group_size).amax(-1)
    rounding = x.float().abs().reshape(*x.shape[:-1], groups, -1).amax(-1) * torch.finfo(x.dtype).eps * 2
    if (error > q.scale / 2 + rounding + 1e-6).any():
        _fail(f"{where}: error {float(error.max()):.4g} exceeds half a step (scale / 2)")


def check_channel_pruner_contract(pruner: ChannelPruner | type[ChannelPruner], *, seed: int = 0) -> None:
    """A channel pruner returns ``[B, H_kv, C]`` long indices, sorted and unique per KV head, with ``C`` its
    declared count (:meth:`ChannelPruner.num_channels`), for any GQA group size; deterministic."""
    if isinstance(pruner, type):
        pruner = pruner()
    check_component_config(pruner)
    g = torch.Generator().manual_seed(seed)
    for b, h_kv, groups, s, length, d in ((1, 2, 1, 4, 20, 8), (2, 3, 2, 1, 7, 16), (3, 1, 4, 8, 1, 5)):
        queries = torch.randn(b, h_kv * groups, s, d, generator=g)
        keys = torch.randn(b, h_kv, length, d, generator=g)
        check_pruned_channels(pruner, queries, keys, groups, f"{pruner!r} on D={d}, G={groups}")


def check_pruned_channels(pruner: ChannelPruner, queries: Tensor, keys: Tensor, groups: int, where: str = "") -> None:
    """The shape, count, order and determinism of one :meth:`ChannelPruner.select_channels` call."""
    b, h_kv, _, d = keys.shape
    kept = pruner.select_channels(queries, keys, groups)
    c = pruner.num_channels(d)
    if kept.dtype != torch.long or tuple(kept.shape) != (b, h_kv, c):
        _fail(f"{where}: returned {kept.dtype} {tuple(kept.shape)}, expected long {(b, h_kv, c)}")
    if c and ((kept[..., 1:] <= kept[..., :-1]).any() or kept.min() < 0 or kept.max() >= d):
        _fail(f"{where}: channels {kept.tolist()} are not sorted, unique and inside [0, {d})")
    if not torch.equal(kept, pruner.select_channels(queries.clone(), keys.clone(), groups)):
        _fail(f"{where}: two calls on the same input disagree")
#: prompts every classifier must label: questions, instructions, empty and whitespace-only text,
#: non-English text, and a ~100k-token prompt (a classifier must read its edges, not all of it)
CLASSIFIER_PROMPTS = (
    "What is the capital of France?",
    "Summarize the following report.\n\nThe committee met twice and approved the budget.",
    "",
    "   \n\t ",
    "请基于给定的文章回答下述问题。文章：今天天气很好。问题：天气怎么样？",
    "x" * 5000,
    "Answer the question. " + "The river runs past the old mill. " * 12_000 + "Where does the river run?",
)


def check_classifier_contract(classifier: TaskClassifier | type[TaskClassifier]) -> None:
    """A classifier names its labels, answers one valid label with confidence in ``[0, 1]`` per prompt
    (empty, whitespace-only, non-English and ~100k-token prompts included), is deterministic, labels a
    batch as it labels each prompt alone, and maps ``[]`` to ``[]``; one that reads no text
    (``needs_text = False``) accepts ``None`` prompts.
    """
    from windowkv.component import NAME_PATTERN

    if isinstance(classifier, type):
        classifier = classifier()
    check_component_config(classifier)
    labels = classifier.labels()
    if not labels or not all(isinstance(x, str) and NAME_PATTERN.match(x) for x in labels):
        _fail(f"{classifier!r}.labels() = {labels!r}: expected a non-empty tuple of names")
    prompts = list(CLASSIFIER_PROMPTS)
    predictions = classifier(prompts)
    if len(predictions) != len(prompts):
        _fail(f"{classifier!r} returned {len(predictions)} predictions for {len(prompts)} prompts")
    for prompt, p in zip(prompts, predictions):
        if p.label not in labels or not 0.0 <= p.confidence <= 1.0:
            _fail(f"{classifier!r} on {prompt[:40]!r}: label {p.label!r} (labels {labels}), confidence {p.confidence}")
    if [p.label for p in classifier(prompts)] != [p.label for p in predictions]:
        _fail(f"{classifier!r}: two calls on the same prompts disagree")
    alone = [classifier([prompt])[0].label for prompt in prompts]
    if alone != [p.label for p in predictions]:
        _fail(f"{classifier!r}: labels in a batch {[p.label for p in predictions]} differ from alone {alone}")
    if classifier([]) != []:
        _fail(f"{classifier!r}([]) is not []")
    if not classifier.needs_text:
        if [p.label for p in classifier([None, None])] != [p.label for p in classifier(["a", "b"])]:
            _fail(f"{classifier!r} reads no text (needs_text=False) but labels None prompts differently")


# ---------------------------------------------------------------------------------------------------
# Evaluation tasks and metrics
# ---------------------------------------------------------------------------------------------------

#: ChatML, as SmolLM2 and Qwen use it
SMALL_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def small_tokenizer(chat_template: str | None = SMALL_CHAT_TEMPLATE, vocab_size: int = 600) -> Any:
    """A real Hugging Face fast tokenizer (byte-level BPE) trained in memory on windowkv's haystack text,
    word lists and digits in about a second: lengths counted with it behave like a model's."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from windowkv.eval.haystack import haystack_sentences, load_data

    corpus = haystack_sentences(400, seed=123) + [json.dumps(load_data("words.json"))] + ["0123456789 " * 20]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                   pad_token="<|endoftext|>")
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def check_task_contract(task: Task, *, tokenizer: Any = None, lengths: Sequence[int] | None = None,
                        registries: Registries | None = None, **settings: Any) -> list[Any]:
    """Check an evaluation task against windowkv's rules; return its examples.

    Rules: :meth:`~windowkv.eval.tasks.Task.build` gives a non-empty list of :class:`windowkv.eval.Example`
    with unique ids, each naming this task and registered metrics; the same seed gives the same examples,
    another seed other ids or prompts (synthetic tasks); ``limit`` cuts the list; a task that counts tokens
    keeps ``prompt`` within its ``length``; the task's options round-trip through ``to_config``.
    """
    from windowkv.eval.examples import Example
    from windowkv.eval.haystack import count_tokens

    if registries is None:
        from windowkv.plugins import default_registries

        registries = default_registries()
    check_component_config(task)
    run = dict(tokenizer=tokenizer, lengths=lengths, **settings)
    examples = task.build(**run)
    if not examples:
        _fail(f"task {task.name!r} built no examples")
    for e in examples:
        if not isinstance(e, Example):
            _fail(f"task {task.name!r} returned {type(e).__name__}, not windowkv.eval.Example")
        if e.task != task.name:
            _fail(f"example {e.id!r} names task {e.task!r}, not {task.name!r}")
        for metric in e.metrics:
            if metric not in registries["metric"]:
                _fail(f"example {e.id!r} is scored by {metric!r}, which is not a registered metric "
                      f"(registered: {', '.join(registries['metric'].names())})")
        if task.needs_tokenizer and tokenizer is not None and e.length is not None:
            tokens = count_tokens(tokenizer, e.prompt)
            if tokens > e.length:
                _fail(f"example {e.id!r} has {tokens} prompt tokens, more than its length {e.length}")
    again = task.build(**run)
    if [e.to_dict() for e in again] != [e.to_dict() for e in examples]:
        _fail(f"task {task.name!r} is not deterministic: the same settings gave other examples")
    if len(examples) > 1 and len(task.build(**run, limit=1)) != 1:
        _fail(f"task {task.name!r}: limit=1 did not give one example")
    return examples


def check_metric_contract(metric: Metric) -> None:
    """Check a metric: scores in ``[0, 1]`` for empty, matching and unrelated predictions and answer lists,
    the same score twice for the same input, and options that round-trip through ``to_config``."""
    check_component_config(metric)
    classes = ("alpha", "beta")
    cases = [("", []), ("", ["alpha"]), ("alpha", ["alpha"]), ("alpha beta", ["beta", "gamma"]),
             ("unrelated text", ["alpha"]), ("Paragraph 3", ["Paragraph 3"]), ("12", ["12"])]
    for prediction, answers in cases:
        try:
            first = metric(prediction, answers, all_classes=classes)
        except ValueError:
            continue  # a metric may refuse answers it cannot read (e.g. retrieval without 'Paragraph N')
        if not isinstance(first, float) or not 0.0 <= first <= 1.0:
            _fail(f"metric {metric.name!r} scored {prediction!r} vs {answers!r} as {first!r}, not a float in [0, 1]")
        if metric(prediction, answers, all_classes=classes) != first:
            _fail(f"metric {metric.name!r} is not deterministic on {prediction!r}")
