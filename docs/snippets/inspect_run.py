"""One compression run, layer by layer, without a model (docs/concepts.md)."""

# --8<-- [start:run]
from windowkv import Policy
from windowkv.testing import synthetic_layer

policy = Policy.from_preset("windowkv", budget=64, sharing={"group_size": 2}, allocator={"group_size": 2})
# a left-padded batch: rows of 300 and 200 tokens, 2 KV heads, 2 query heads per KV head (GQA)
layer = synthetic_layer([300, 200], kv_heads=2, query_groups=2, head_dim=8)
run = policy.start_run(layer.lengths, layer.padded_length, num_layers=4, task="qa")  # profile qa: s = 32
for idx in range(run.num_layers):
    selection = layer.select(policy, run, idx)  # what the transformers hook does after each layer's prefill
    print(f"layer {idx}: leader {policy.sharing(idx, run.num_layers)}, budgets {run.groups[0].budgets[idx]}, "
          f"positions {tuple(selection.positions.shape)}, kept {selection.valid.sum(-1).flatten().tolist()}")
print({key: tuple(s.shape) for key, s in run.shared_scores.items()})  # (leader, profile group) -> scores
# --8<-- [end:run]

# layer 0: budget 118 per row -> 14 whole windows of 8 = 112 review tokens + the suffix of 32
assert run.groups[0].budgets[0] == [118, 118] and run.groups[0].budgets[3] == [9, 9]
assert tuple(layer.select(policy, run, 0).positions.shape) == (2, 1, 150)  # [B, H=1 (shared heads), K]
assert layer.select(policy, run, 0).valid.sum(-1).flatten().tolist() == [144, 144]
assert sorted(run.shared_scores) == [(0, 0), (2, 0)]  # two leaders scored; followers reused their scores
assert tuple(run.shared_scores[(0, 0)].shape) == (2, 2, 268)  # [B, H_kv, R = L - s], rows left-aligned
