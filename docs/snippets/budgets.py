"""Budget semantics (docs/concepts.md): what a budget counts, rounding, and the window rule."""

import torch

# --8<-- [start:allocators]
from windowkv.allocators import ArithmeticGroupBudget, UniformBudget

# B = 256 review tokens per layer on average, over the 30 layers of SmolLM2-135M
print(UniformBudget()(256, 30))  # 30 x 256
budgets = ArithmeticGroupBudget(group_size=8, beta=14)(256, 30)
print(budgets)  # 8 x 355, 8 x 284, 8 x 213, 6 x 142: the last group is partial
print(sum(budgets), "<=", 30 * 256)  # 7668 <= 7680: floor rounding never overshoots N x B
# --8<-- [end:allocators]

assert UniformBudget()(256, 30) == [256] * 30
assert budgets == [355] * 8 + [284] * 8 + [213] * 8 + [142] * 6

# --8<-- [start:ratio]
from windowkv import Policy

policy = Policy.from_preset("windowkv", budget=0.25)
# two prompts of 1000 and 600 tokens, left-padded to 1000; the "qa" profile keeps a suffix of s = 32
run = policy.start_run(lengths=[1000, 600], padded_length=1000, num_layers=30, task="qa")
group = run.groups[0]
print(group.review_lengths)  # [968, 568]: L - s per row
print(group.budgets[0], group.budgets[29])  # [336, 197] [134, 78]: B = 0.25 x 968 and 0.25 x 568
# --8<-- [end:ratio]

assert group.review_lengths == [968, 568]
assert group.budgets[0] == [336, 197] and group.budgets[29] == [134, 78]

# --8<-- [start:windows]
from windowkv.selectors import WindowAverageSelector

# 19 review tokens: windows of 8, 8 and 3 tokens; the short last window scores lowest
scores = torch.tensor([[[2.0] * 8 + [1.0] * 8 + [0.0] * 3]])  # [B=1, H_kv=1, R=19]
keep = WindowAverageSelector(window_size=8)(scores, lengths=torch.tensor([19]), budgets=torch.tensor([12]))
print(keep.shape, int(keep.sum()))  # torch.Size([1, 1, 19]) 8
# the paper's rule drops ceil((19 - 12) / 8) = 1 window, the short one, and keeps 16 > 12 tokens
# --8<-- [end:windows]

assert keep[0, 0].nonzero().flatten().tolist() == list(range(8))
