"""Two new selectors, checked, registered and used in a policy (docs/tutorials/write-a-selector.md).

In a distribution, the classes live in their own modules and the hook function in the module named by
the ``windowkv`` entry point; here one file plays both parts.
"""

import sys

# --8<-- [start:sink_topk]
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.selectors import Selector
from windowkv.tensor_ops import valid_prefix


class SinkTopKSelector(Selector):
    """Keeps the first ``sinks`` review tokens (attention sinks), then the best-scoring other tokens.

    Shapes: scores ``[B, H_kv, R]`` (aligned rows), lengths and budgets ``[B]`` -> keep ``[B, H, R]`` bool,
    ``H = 1`` for ``heads="shared"``, else ``H_kv``. At most ``budgets[b]`` tokens per row and head.
    """

    name: ClassVar[str] = "sink_topk"

    sinks: int = Field(4, ge=0, description="First review tokens of each row always kept (budget allowing).")

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        if self.heads == "shared":
            scores = scores.mean(dim=1, keepdim=True)  # [B, 1, R]: one ranking for all KV heads
        r = scores.shape[-1]
        valid = valid_prefix(lengths, r)[:, None, :]  # [B, 1, R]: token j of row b exists iff j < lengths[b]
        is_sink = (torch.arange(r, device=scores.device) < self.sinks)[None, None, :]  # [1, 1, R]
        ranked = scores.masked_fill(is_sink, float("inf")).masked_fill(~valid, float("-inf"))
        order = ranked.argsort(dim=-1, descending=True, stable=True)  # [B, H, R], ties: earlier first
        rank = order.argsort(dim=-1)  # rank of each position, no Python loop, no device sync
        return (rank < budgets[:, None, None]) & valid
# --8<-- [end:sink_topk]


# --8<-- [start:window_median]
from windowkv.selectors import WindowSelector


class WindowMedianSelector(WindowSelector):
    """Keeps whole windows by the median of their token scores (robust to one outlier token)."""

    name: ClassVar[str] = "window_median"

    def window_scores(self, windows: Tensor, token_valid: Tensor) -> Tensor:
        # windows [B, H, N, w] (invalid tokens 0), token_valid [B, 1, N, w] -> [B, H, N]
        masked = windows.masked_fill(~token_valid, float("nan"))
        return masked.nanmedian(dim=-1).values.nan_to_num(float("-inf"))
# --8<-- [end:window_median]


# --8<-- [start:check]
from windowkv.testing import check_selector_contract

for selector in (SinkTopKSelector(), SinkTopKSelector(sinks=0, heads="per_kv_head"),
                 WindowMedianSelector(window_size=4), WindowMedianSelector(heads="per_kv_head")):
    check_selector_contract(selector)  # raises AssertionError naming the broken rule
# --8<-- [end:check]

# --8<-- [start:register]
import windowkv


@windowkv.hookimpl
def windowkv_register_selectors():
    return [SinkTopKSelector, WindowMedianSelector]
# --8<-- [end:register]

# --8<-- [start:use]
from windowkv import Policy
from windowkv.models import load_model
from windowkv.testing import fresh_registries

# an installed plugin is found through its entry point; here, register this module's hooks directly
registries = fresh_registries(sys.modules[__name__])
policy = Policy.from_config(
    {"preset": "windowkv", "budget": 0.25,
     "profiles": {"qa": {"selector": {"type": "sink_topk", "sinks": 4}},
                  "other": {"selector": {"type": "window_median", "window_size": 8}}}},
    registries=registries,
)
model, tokenizer = load_model()
inputs = tokenizer("Where is the key? " + "The key is under the mat. It is raining. " * 30, return_tensors="pt")
with policy.apply(model, tokenizer) as handle:
    model.generate(**inputs, max_new_tokens=4, do_sample=False)
print(handle.last_run.predictions[0].label, handle.last_run.kept_tokens()[0])
# --8<-- [end:use]

assert handle.last_run.predictions[0].label == "qa"
assert handle.last_run.kept_tokens()[0][0] < inputs["input_ids"].shape[1]
