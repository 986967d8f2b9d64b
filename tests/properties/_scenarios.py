"""Hypothesis strategies shared by the invariant tests: one policy per registered component combination.

The pipeline tests in this directory are parametrised over :data:`COMBOS`, every registered selector x
sharing strategy x budget allocator (plugins included), so a new component is tested without editing a
test; the component-alone tests over the registry of one kind. Each test asks for a total number of
examples (:func:`examples`, :func:`per_combo`): every invariant's tests add up to at least 1,000 in the
``ci`` profile. Scenarios are small most of the time (:func:`mostly`) so that a thousand stay cheap.
Components get the drawn parameters they declare (``window_size``, ``heads``, ``group_size``, ``beta``)
through :func:`windowkv.testing.make_component`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st

from windowkv import Policy, Profile
from windowkv.classifiers import KeywordClassifier
from windowkv.plugins import default_registries
from windowkv.run import CompressionRun, LayerSelection
from windowkv.testing import SyntheticLayer, layer_order, make_component, synthetic_layer

REGISTRIES = default_registries()

#: texts the keyword classifier labels ``qa`` and ``other``: rows of one batch get different profiles
TEXTS = {"qa": "What is the answer to the question?", "other": "Summarize the report."}

COMBOS = [
    pytest.param(sel, sh, al, id=f"{sel}-{sh}-{al}")
    for sel in REGISTRIES["selector"].names()
    for sh in REGISTRIES["sharing"].names()
    for al in REGISTRIES["allocator"].names()
]

MAX_LENGTH = 300


def examples(total: int, parametrisations: int = 1, **kwargs) -> settings:
    """Settings of a test that draws ``total`` examples at the ``ci`` profile's scale (``max_examples`` 100,
    see ``tests/conftest.py``), spread evenly over its ``parametrisations`` (at least 1 each)."""
    scale = settings.default.max_examples / 100
    return settings(max_examples=max(1, math.ceil(total * scale / max(parametrisations, 1))), **kwargs)


def per_combo(total: int, **kwargs) -> settings:
    """:func:`examples` for a test parametrised over :data:`COMBOS`: registering components spreads the
    same total over more combinations, so the suite's time stays bounded."""
    return examples(total, len(COMBOS), **kwargs)


def mostly(small: st.SearchStrategy, large: st.SearchStrategy, one_in: int = 8) -> st.SearchStrategy:
    """``small`` most of the time, ``large`` about once in ``one_in`` draws: examples stay cheap (a few
    layers, short prompts) while the model sizes of the paper (30 layers, 300 tokens) keep coming up."""
    return st.integers(1, one_in).flatmap(lambda i: large if i == 1 else small)


@dataclass
class Scenario:
    """A policy, a left-padded batch and per-layer synthetic data."""

    policy: Policy
    lengths: tuple[int, ...]
    padded_length: int
    labels: tuple[str, ...]
    num_layers: int
    kv_heads: int
    query_groups: int
    seed: int

    @property
    def texts(self) -> list[str]:
        return [TEXTS[label] for label in self.labels]

    @cached_property
    def layers(self) -> list[SyntheticLayer]:
        return [
            synthetic_layer(self.lengths, padded_length=self.padded_length, kv_heads=self.kv_heads,
                            query_groups=self.query_groups, head_dim=4, seed=self.seed + 7919 * layer)
            for layer in range(self.num_layers)
        ]

    def start(self, policy: Policy | None = None) -> CompressionRun:
        return (policy or self.policy).start_run(self.lengths, self.padded_length, self.num_layers, texts=self.texts)

    def run(self, policy: Policy | None = None) -> tuple[CompressionRun, list[LayerSelection | None]]:
        policy = policy or self.policy
        run = self.start(policy)
        selections: list[LayerSelection | None] = [None] * self.num_layers
        for i in layer_order(policy.sharing, self.num_layers):
            selections[i] = self.layers[i].select(policy, run, i)
        return run, selections

    def row_alone(self, row: int) -> Scenario:
        """Row ``row`` as a batch of one, without padding (same data, same label)."""
        alone = Scenario(self.policy, (self.lengths[row],), self.lengths[row], (self.labels[row],),
                         self.num_layers, self.kv_heads, self.query_groups, self.seed)
        alone.__dict__["layers"] = [layer.row(row) for layer in self.layers]
        return alone

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis prints falsifying examples with this
        printer.text(repr(self))

    def __repr__(self) -> str:
        return (f"Scenario(policy={self.policy.to_config()}, lengths={self.lengths}, padded_length="
                f"{self.padded_length}, labels={self.labels}, num_layers={self.num_layers}, kv_heads="
                f"{self.kv_heads}, query_groups={self.query_groups}, seed={self.seed})")


def budgets() -> st.SearchStrategy[int | float]:
    """Token budgets (ints) and ratios (floats in (0, 1])."""
    return st.one_of(
        mostly(st.integers(1, 100), st.integers(1, 400), one_in=4),
        st.sampled_from([1, 8, 32, 128]),
        st.floats(0.01, 1.0, allow_nan=False),
        st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    )


def lengths_for(suffixes: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Prompt lengths 0..MAX_LENGTH, with the edges near the suffix sizes and length 1 drawn often."""
    edges = sorted({0, 1, 2, MAX_LENGTH} | {max(s + d, 0) for s in suffixes for d in (-1, 0, 1)})
    return st.one_of(mostly(st.integers(1, 96), st.integers(1, MAX_LENGTH)), st.sampled_from(edges))


@st.composite
def policies(draw, selector: str, sharing: str, allocator: str, *, budget=None) -> Policy:
    """A policy of the given registered components with drawn parameters and two profiles."""
    group = draw(mostly(st.integers(1, 4), st.integers(1, 12), one_in=3))
    alloc_group = draw(st.one_of(st.just(group), st.integers(1, 12)))
    beta = draw(st.one_of(st.just(14.0), st.floats(alloc_group / 2 + 0.25, 30.0)))
    selector_cls = REGISTRIES["selector"].get(selector)
    profiles = {}
    for label in ("qa", "other"):
        component = make_component(
            selector_cls,
            window_size=draw(st.integers(1, 16)),
            heads=draw(st.sampled_from(["shared", "per_kv_head"])),
        )
        profiles[label] = Profile(component, draw(st.integers(1, 40)))
    return Policy(
        draw(budgets()) if budget is None else budget,
        classifier=KeywordClassifier(),
        sharing=make_component(REGISTRIES["sharing"].get(sharing), group_size=group,
                               leader_layer=draw(st.sampled_from(["first", "last"]))),
        allocator=make_component(REGISTRIES["allocator"].get(allocator), group_size=alloc_group, beta=beta),
        profiles=profiles,
        name="drawn",
    )


@st.composite
def scenarios(draw, selector: str, sharing: str, allocator: str, *, policy: Policy | None = None,
              budget=None, max_batch: int = 4, min_length: int = 0) -> Scenario:
    """A drawn policy (or the given one) and a left-padded batch of 1..max_batch rows."""
    if policy is None:
        policy = draw(policies(selector, sharing, allocator, budget=budget))
    suffixes = tuple(p.suffix_size for p in policy.profiles.values())
    batch = draw(st.integers(1, max_batch))
    lengths = tuple(max(n, min_length) for n in draw(st.lists(lengths_for(suffixes), min_size=batch, max_size=batch)))
    extra = draw(st.sampled_from([0, 0, 0, 1, 3]))
    return Scenario(
        policy=policy,
        lengths=lengths,
        padded_length=max(lengths) + extra,
        labels=tuple(draw(st.lists(st.sampled_from(["qa", "other"]), min_size=batch, max_size=batch))),
        num_layers=draw(mostly(st.integers(1, 6), st.one_of(st.just(30), st.integers(1, 40)))),
        kv_heads=draw(st.integers(1, 3)),
        query_groups=draw(st.integers(1, 2)),
        seed=draw(st.integers(0, 2**20)),
    )


# ---------------------------------------------------------------------------------------------------
# One component alone: cheap examples, so every invariant draws its thousand
# ---------------------------------------------------------------------------------------------------


@st.composite
def selector_cases(draw, selector: str):
    """A registered selector with drawn parameters, and aligned ``scores [B, H_kv, R]`` (ties drawn
    often), ``lengths [B]`` and ``budgets [B]`` as :meth:`Policy.select_layer` hands them over."""
    component = make_component(REGISTRIES["selector"].get(selector), window_size=draw(st.integers(1, 12)),
                               heads=draw(st.sampled_from(["shared", "per_kv_head"])))
    b, h, r = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(mostly(st.integers(0, 48), st.integers(0, 200)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**20)))
    scores = torch.rand(b, h, r, generator=g)
    if draw(st.booleans()):
        scores = (scores * draw(st.integers(1, 4))).floor()  # ties
    lengths = torch.tensor(draw(st.lists(st.one_of(st.integers(0, r), st.just(r)), min_size=b, max_size=b)),
                           dtype=torch.long)
    budgets = torch.tensor(draw(st.lists(st.integers(0, r + 2), min_size=b, max_size=b)), dtype=torch.long)
    return component, scores, lengths, budgets
