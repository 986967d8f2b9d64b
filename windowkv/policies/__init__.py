"""Policies: compositions of components. WindowKV is the reference; presets name the others."""

from windowkv.policies.policy import Policy, Profile, windowkv_profiles
from windowkv.policies.presets import BUILTIN_PRESETS, Preset

__all__ = ["Policy", "Profile", "Preset", "BUILTIN_PRESETS", "windowkv_profiles"]
