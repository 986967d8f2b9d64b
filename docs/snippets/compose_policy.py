"""Three ways to the same policy, and the errors of a bad one (docs/tutorials/compose-a-policy.md)."""

# --8<-- [start:files]
from windowkv import load_policy

policy = load_policy("policy.yaml")  # or .toml / .json: the same mapping
assert policy == load_policy("policy.toml") == load_policy("policy.json")
print(repr(policy), repr(policy.sharing), repr(policy.profiles["qa"].selector), sep="\n")
print(load_policy("policy.yaml", budget=512).budget)  # keyword overrides replace the file's keys
# --8<-- [end:files]

# --8<-- [start:preset]
from windowkv import Policy

same = Policy.from_preset(
    "windowkv", budget=0.12, name="windowkv_g4",
    sharing={"group_size": 4},  # no "type": update the preset's component
    allocator={"group_size": 4},
    profiles={"qa": {"selector": {"heads": "per_kv_head"}}},
)
assert same == policy
uniform = Policy.from_preset("windowkv", budget=0.12, allocator={"type": "uniform"})  # new "type": replace it
print(repr(uniform.allocator))
# --8<-- [end:preset]

# --8<-- [start:python]
from windowkv import Profile
from windowkv.allocators import ArithmeticGroupBudget, UniformBudget
from windowkv.classifiers import EmbeddingClassifier, FixedClassifier
from windowkv.scorers import SuffixAttentionScorer
from windowkv.selectors import TokenTopKSelector, WindowAverageSelector, WindowMaxSelector
from windowkv.sharing import GroupSharing, NoSharing

composed = Policy(
    0.12,
    scorer=SuffixAttentionScorer(),
    classifier=EmbeddingClassifier(),  # MiniLM + the shipped head; KeywordClassifier() needs no model
    allocator=ArithmeticGroupBudget(group_size=4, beta=14),
    sharing=GroupSharing(group_size=4),
    profiles={
        "qa": Profile(WindowMaxSelector(window_size=8, heads="per_kv_head"), suffix_size=32),
        "other": Profile(WindowAverageSelector(window_size=8), suffix_size=16),
    },
    name="windowkv_g4",
)
assert composed == policy
assert Policy.from_config(composed.to_config()) == composed  # to_config() is the complete description

# a SnapKV-like composition: one profile, token top-k per KV head, uniform budgets (the snapkv preset
# also pools the scores: pooled_suffix_attention)
snap_like = Policy(
    1024,
    classifier=FixedClassifier(label="all"),
    allocator=UniformBudget(),
    sharing=NoSharing(),
    profiles={"all": Profile(TokenTopKSelector(), suffix_size=32)},
    name="snapkv_like",
)
# --8<-- [end:python]

# --8<-- [start:errors]
from windowkv import ConfigError

try:
    load_policy("bad_policy.yaml")
except ConfigError as error:
    print(error)  # every bad field, with its path
    problems = error.errors  # the same, as (path, message) pairs
# --8<-- [end:errors]

paths = [path for path, _ in problems]
assert paths == ["budget", "sharing.group_size", "profiles.qa.selector.type",
                 "profiles.other.selector.top_k"], paths
assert any("Did you mean 'window_max'?" in message for _, message in problems)
