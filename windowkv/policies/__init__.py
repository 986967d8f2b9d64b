"""Policies: compositions of components. WindowKV is the reference; presets name the others."""

from windowkv.policies.config import PolicyConfig, Profile, policy_json_schema
from windowkv.policies.policy import Policy
from windowkv.policies.presets import BUILTIN_PRESETS, Preset
from windowkv.policies.protocol import LayerPolicy

__all__ = ["Policy", "PolicyConfig", "Profile", "Preset", "BUILTIN_PRESETS", "LayerPolicy", "policy_json_schema"]
