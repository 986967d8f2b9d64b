"""windowkv: pluggable KV-cache compression at prefill for Hugging Face transformers models.

WindowKV (arXiv 2503.17922) is the reference composition::

    from windowkv import Policy
    policy = Policy.from_preset("windowkv", budget=0.25)
    with policy.apply(model, tokenizer):
        model.generate(**inputs)
"""

from windowkv.budget import Budget
from windowkv.component import Component
from windowkv.config import load_policy, resolve_policy
from windowkv.errors import (
    ComponentConflictError,
    ConfigError,
    PluginLoadWarning,
    UnknownComponentError,
    UnsupportedModelError,
    WindowKVError,
)
from windowkv.plugins import hookimpl
from windowkv.policies import LayerPolicy, Policy, PolicyConfig, Preset, Profile, policy_json_schema
from windowkv.run import CompressionRun, LayerInputs, LayerSelection, TaskPrediction

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Session":  # imports transformers: loaded on first use
        from windowkv.hf.session import Session

        return Session
    raise AttributeError(f"module 'windowkv' has no attribute {name!r}")

__all__ = [
    "Budget",
    "Component",
    "CompressionRun",
    "ComponentConflictError",
    "ConfigError",
    "LayerInputs",
    "LayerPolicy",
    "LayerSelection",
    "Policy",
    "PolicyConfig",
    "PluginLoadWarning",
    "Preset",
    "Profile",
    "Session",
    "TaskPrediction",
    "UnknownComponentError",
    "UnsupportedModelError",
    "WindowKVError",
    "hookimpl",
    "load_policy",
    "policy_json_schema",
    "resolve_policy",
]
