"""Policy configuration files: YAML, TOML or JSON, validated into a :class:`windowkv.Policy`.

A file holds one policy configuration, either at the top level or under a ``policy`` key::

    # windowkv.yaml
    preset: windowkv
    budget: 0.25
    sharing: {group_size: 4}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from windowkv.errors import ConfigError
from windowkv.policies import Policy

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML, TOML or JSON file into a dict (the ``policy`` table if there is one)."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError([("", f"unsupported file type {path.suffix!r}; use one of {', '.join(FORMATS)}")], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read the file: {exc.strerror or exc}")], str(path)) from None
    try:
        if fmt == "yaml":
            import yaml

            data = yaml.safe_load(text)
        elif fmt == "toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # every parser has its own error type; all mean "not valid syntax"
        raise ConfigError([("", f"not valid {fmt.upper()}: {exc}")], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([("", f"expected a mapping at the top level, got {type(data).__name__}")], str(path))
    if "policy" in data:
        extra = sorted(set(data) - {"policy"})
        if extra:
            raise ConfigError([(k, "unknown top-level key; put the policy under 'policy' alone") for k in extra],
                              str(path))
        data = data["policy"]
    return data


def load_policy(path: str | Path, **overrides: Any) -> Policy:
    """Read and validate a policy file; ``overrides`` (e.g. ``budget=0.12``) replace its keys."""
    data = read_config_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Policy.from_config(data, source=str(path))


def resolve_policy(spec: str | Path, budget: Any = None) -> Policy:
    """A policy from a preset name or a config file path (what the CLI's ``--policy`` accepts)."""
    text = str(spec)
    if Path(text).suffix.lower() in FORMATS:
        return load_policy(text, budget=budget)
    return Policy.from_preset(text, budget=budget)
