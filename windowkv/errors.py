"""Exceptions and warnings raised by windowkv.

Every user-facing error names what was wrong and what would have been accepted.
"""

from __future__ import annotations


class WindowKVError(Exception):
    """Base class of every error windowkv raises on purpose."""


class ConfigError(WindowKVError, ValueError):
    """A configuration (file, dict or keyword arguments) is invalid.

    Attributes:
        errors: ``(field path, message)`` pairs, e.g. ``("selector.window_size", "...")``.
    """

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = f"invalid windowkv config{f' in {source}' if source else ''}"
        lines = [f"  {loc or '<root>'}: {msg}" for loc, msg in self.errors]
        super().__init__(head + ":\n" + "\n".join(lines))


class UsageError(WindowKVError, ValueError):
    """A command-line option or argument that cannot be used as given (the message says what would be)."""


class UnknownComponentError(WindowKVError, KeyError):
    """A component name is not registered for its kind."""

    def __init__(self, kind: str, name: str, choices: list[str], suggestion: str | None = None):
        self.kind, self.name, self.choices = kind, name, choices
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        plural = "policies" if kind == "policy" else f"{kind}s"
        self.message = f"unknown {kind} {name!r}.{hint} Registered {plural}: {', '.join(choices) or '(none)'}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.message


class ComponentConflictError(WindowKVError):
    """Two plugins register a component of the same kind under the same name."""


class UnsupportedModelError(WindowKVError):
    """The model (architecture, cache type or attention implementation) is not supported."""


class PluginLoadWarning(UserWarning):
    """A third-party plugin failed to load; the other plugins are still available."""
