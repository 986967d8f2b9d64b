"""Policy configuration files: YAML, TOML or JSON, validated into a :class:`windowkv.Policy`.

A file holds one policy configuration, either at the top level or under a ``policy`` key::

    # windowkv.yaml
    preset: windowkv
    budget: 0.25
    sharing: {group_size: 4}
"""

from __future__ import annotations

import json
import re
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


def write_config_file(config: dict[str, Any], path: str | Path) -> None:
    """Write a configuration dict in the format of ``path``'s extension."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt == "yaml":
        import yaml

        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    elif fmt == "toml":
        path.write_text(_to_toml(config), encoding="utf-8")
    else:
        raise ConfigError([("", f"unsupported file type {path.suffix!r}; use one of {', '.join(FORMATS)}")], str(path))


def _to_toml(config: dict[str, Any], prefix: str = "") -> str:
    """Minimal TOML writer for policy configs: scalars, lists and nested tables; ``None`` is left out
    (TOML has no null, and every optional field defaults to ``None``)."""
    scalars = {k: v for k, v in config.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in config.items() if isinstance(v, dict)}
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for key, table in tables.items():
        out += _to_toml(table, f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key))
    return out


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)  # TOML files are UTF-8: any other character is written as is
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    raise ConfigError([("", f"cannot write {type(value).__name__} values to TOML")])


def resolve_policy(spec: str | Path, budget: Any = None) -> Policy:
    """A policy from a preset name or a config file path (what the CLI's ``--policy`` accepts)."""
    text = str(spec)
    if Path(text).suffix.lower() in FORMATS:
        return load_policy(text, budget=budget)
    return Policy.from_preset(text, budget=budget)
