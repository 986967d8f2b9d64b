"""Budget semantics (windowkv/budget.py) and the per-layer allocators (windowkv/budgets/)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv import Budget, ConfigError, Policy
from windowkv.allocators import ArithmeticGroupBudget, UniformBudget


# ----------------------------------------------------------------------------------- Budget.of


@pytest.mark.parametrize(
    "value, tokens, ratio",
    [
        (256, 256, None),
        (1, 1, None),
        ("256", 256, None),
        (" 64 ", 64, None),
        ("+8", 8, None),
        (0.25, None, 0.25),
        (1.0, None, 1.0),
        ("0.25", None, 0.25),
        ("1.0", None, 1.0),
        ("25%", None, 0.25),
        ("12.5 %", None, 0.125),
        ("100%", None, 1.0),
        (Budget(tokens=3), 3, None),
    ],
)
def test_budget_of_ints_are_tokens_floats_are_ratios(value, tokens, ratio):
    budget = Budget.of(value)
    assert (budget.tokens, budget.ratio) == (tokens, ratio)


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "integer >= 1"),
        (-5, "integer >= 1"),
        ("0", "integer >= 1"),
        ("-3", "integer >= 1"),
        (0.0, r"\(0, 1\]"),
        (-0.5, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
        (2.0, "write 2 for tokens"),
        ("2.0", r"token count \(int >= 1\)"),
        ("1e3", r"got .1e3."),
        ("150%", r"\(0, 1\]"),
        ("0%", r"\(0, 1\]"),
        (float("nan"), r"\(0, 1\]"),
        (float("inf"), r"\(0, 1\]"),
        (True, "token count or a ratio"),
        (None, "token count"),
        ("many", "token count"),
        ([256], "token count"),
    ],
)
def test_budget_of_rejects_with_a_message_saying_what_is_accepted(value, message):
    with pytest.raises(ValueError, match=message):
        Budget.of(value)


def test_budget_is_tokens_or_ratio_not_both_nor_neither():
    with pytest.raises(ValueError, match="not both or neither"):
        Budget()
    with pytest.raises(ValueError, match="not both or neither"):
        Budget(tokens=4, ratio=0.5)


@given(tokens=st.integers(1, 10**6), review=st.integers(0, 10**5))
def test_token_budget_average_ignores_the_prompt(tokens, review):
    assert Budget.of(tokens).average(review) == tokens


@given(ratio=st.floats(0, 1, exclude_min=True), review=st.integers(0, 10**5))
def test_ratio_budget_average_is_a_share_of_the_review_tokens(ratio, review):
    average = Budget.of(ratio).average(review)
    assert average == pytest.approx(ratio * review)
    assert 0 <= average <= review


@given(value=st.one_of(st.integers(1, 10**6), st.floats(0, 1, exclude_min=True)))
def test_budget_config_round_trips(value):
    budget = Budget.of(value)
    assert Budget.of(budget.to_config()) == budget
    assert type(budget.to_config()) is type(value)


def test_budget_str_says_what_it_counts():
    assert str(Budget.of(256)) == "256 tokens"
    assert str(Budget.of("25%")) == "0.25 of review"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "x"])
def test_policy_budget_errors_name_the_budget_field(bad):
    with pytest.raises(ConfigError) as info:
        Policy(bad)
    assert [loc for loc, _ in info.value.errors] == ["budget"]


# ----------------------------------------------------------------------------------- allocators


@pytest.mark.parametrize("average", [128, 256, 512, 1024, 2048])
def test_arithmetic_groups_reproduce_the_paper(average):
    """G=8, beta=14, 32 layers (Llama-3-8B): last group B*G/beta, first 2B - last, equal steps."""
    allocator = ArithmeticGroupBudget()
    values = allocator.group_values(average, 32)
    last = average * 8 / 14
    first = 2 * average - last
    step = (first - last) / 3
    assert values == pytest.approx([first, first - step, first - 2 * step, last])
    budgets = allocator(average, 32)
    assert budgets == [math.floor(v) for v in values for _ in range(8)]
    assert average - 1 <= sum(budgets) / 32 <= average


def test_arithmetic_groups_paper_table_for_128():
    assert ArithmeticGroupBudget()(128, 32) == [182] * 8 + [146] * 8 + [109] * 8 + [73] * 8


@pytest.mark.parametrize("num_layers", [30, 9, 17, 33, 1, 7])
@pytest.mark.parametrize("average", [64, 128.0, 1000.5])
def test_arithmetic_groups_partial_last_group(num_layers, average):
    """N not a multiple of G (SmolLM2: 30 layers): a budget per layer, equal inside each group,
    decreasing across groups, layer-weighted mean within 1 token of B and never above it."""
    allocator = ArithmeticGroupBudget(group_size=8, beta=14)
    budgets = allocator(average, num_layers)
    assert len(budgets) == num_layers
    groups = [budgets[i : i + 8] for i in range(0, num_layers, 8)]
    assert all(len(set(g)) == 1 for g in groups)
    heads = [g[0] for g in groups]
    assert heads == sorted(heads, reverse=True)
    if len(groups) > 1:
        assert heads[0] > heads[-1]
    assert average - 1 <= sum(budgets) / num_layers <= average


@given(
    group=st.integers(1, 40),
    data=st.data(),
    average=st.floats(0, 5000),
    num_layers=st.integers(1, 120),
)
def test_arithmetic_groups_mean_is_b_within_one_token(group, data, average, num_layers):
    beta = data.draw(st.floats(group / 2, 100, exclude_min=True))
    budgets = ArithmeticGroupBudget(group_size=group, beta=beta)(average, num_layers)
    assert average - 1 <= sum(budgets) / num_layers <= average + 1e-9


@pytest.mark.parametrize("group, beta", [(8, 4.0), (8, 3.0), (30, 14.0)])
def test_arithmetic_groups_reject_beta_at_most_half_the_group(group, beta):
    with pytest.raises(ValueError, match=r"beta .* must be > group_size / 2"):
        ArithmeticGroupBudget(group_size=group, beta=beta)


def test_arithmetic_groups_beta_error_names_the_allocator_in_a_config():
    with pytest.raises(ConfigError, match=r"allocator: .*beta") as info:
        Policy.from_config({"preset": "windowkv", "budget": 64, "allocator": {"group_size": 32}})
    assert [loc for loc, _ in info.value.errors] == ["allocator"]


@pytest.mark.parametrize("average, expected", [(0, 0), (0.9, 0), (7, 7), (7.99, 7), (128.5, 128)])
def test_uniform_gives_every_layer_floor_b(average, expected):
    assert UniformBudget()(average, 5) == [expected] * 5


@pytest.mark.parametrize("average, layers", [(-1, 4), (float("nan"), 4), (float("inf"), 4), (8, 0)])
def test_allocators_reject_impossible_inputs(average, layers):
    for allocator in (UniformBudget(), ArithmeticGroupBudget()):
        with pytest.raises(ValueError, match="num_layers|average budget"):
            allocator(average, layers)


def test_budget_tokens_must_be_an_integer():
    with pytest.raises(ValueError, match="integer"):
        Budget(tokens=2.5)


def test_integer_ratio_round_trips_as_a_ratio():
    assert Budget.of(Budget(ratio=1).to_config()) == Budget(ratio=1.0)


# ------------------------------------------------------------------ byte budgets


@pytest.mark.parametrize("text, budget", [("1.5MiB", Budget(nbytes=1572864)), ("800KB", Budget(nbytes=800000)),
                                          ("65536B", Budget(nbytes=65536)), ("12% bytes", Budget(bytes_ratio=0.12)),
                                          ("6%bytes", Budget(bytes_ratio=0.06)),
                                          ("25 % of bytes", Budget(bytes_ratio=0.25))])
def test_byte_budgets_parse_and_round_trip(text, budget):
    assert Budget.of(text) == budget
    assert Budget.of(budget.to_config()) == budget
    assert budget.in_bytes and budget.kind in ("bytes", "bytes_ratio")


def test_a_byte_budget_pays_for_the_suffix_then_buys_review_slots():
    from windowkv.budget import ByteCost

    cost = ByteCost(num_layers=4, slot_nbytes=100.0, token_nbytes=400.0, layer_nbytes=20.0)
    # 4 layers x (20 fixed + 8 suffix slots x 100 + 50 review slots x 100)
    assert Budget.of("23280B").average(500, suffix_size=8, cost=cost) == pytest.approx(50.0)
    # 10% of a 508-token prompt at 400 bytes a token and layer = 20320 bytes per layer
    assert Budget.of("10% bytes").average(500, suffix_size=8, cost=cost) == pytest.approx((20320 - 820) / 100)
    with pytest.raises(ValueError, match=r"byte budget 3000 bytes is below the suffix's bytes: the 8 suffix tokens "
                                         r"cost 3280 bytes over 4 layers"):
        Budget.of("3000B").average(500, suffix_size=8, cost=cost)
    with pytest.raises(ValueError, match="needs the cost of a kept slot"):
        Budget.of("3000B").average(500, suffix_size=8)
