"""One generic registry type for every component kind.

A :class:`Registry` maps names to registered objects (component classes or policy presets) of one
kind and remembers which plugin and distribution provided each, so that conflicts and listings can
name them. :class:`Registries` bundles one registry per kind; it is built by
:func:`windowkv.plugins.build_registries` from the pluggy hooks.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Generic, Iterator, TypeVar

from windowkv.component import NAME_PATTERN
from windowkv.errors import ComponentConflictError, UnknownComponentError

T = TypeVar("T")

#: The component kinds, in the order the CLI lists them; each has one ``windowkv_register_*`` hook.
KINDS = ("scorer", "classifier", "selector", "sharing", "allocator", "merger", "quantizer", "channel_pruner",
         "method", "policy", "task", "metric")
#: kinds whose names may carry one family prefix: ``ruler/vt``, ``longbench/repobench-p``
FAMILY_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(/[a-z0-9][a-z0-9_-]*)?$")
NAME_PATTERNS = {"task": FAMILY_NAME_PATTERN}


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its provenance."""

    kind: str
    name: str
    obj: T
    plugin: str
    distribution: str | None = None
    version: str | None = None

    @property
    def provider(self) -> str:
        """``distribution version`` when known, else the plugin's name."""
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return self.plugin


@dataclass
class Registry(Generic[T]):
    """Registered objects of one kind, by name."""

    kind: str
    _entries: dict[str, Entry[T]] = field(default_factory=dict)

    def add(self, name: str, obj: T, plugin: str, distribution: str | None = None,
            version: str | None = None) -> None:
        """Register ``obj`` under ``name``; a second registration of the name is a conflict."""
        pattern = NAME_PATTERNS.get(self.kind, NAME_PATTERN)
        if not isinstance(name, str) or not pattern.match(name):
            raise ValueError(
                f"invalid {self.kind} name {name!r} from plugin {plugin!r}: names must match "
                f"{pattern.pattern}"
            )
        if name in self._entries:
            first = self._entries[name]
            new = Entry(self.kind, name, obj, plugin, distribution, version)
            raise ComponentConflictError(
                f"{self.kind} {name!r} is registered twice: by {first.provider} "
                f"(plugin {first.plugin!r}) and by {new.provider} (plugin {plugin!r}). "
                "Uninstall one of them or rename the component."
            )
        self._entries[name] = Entry(self.kind, name, obj, plugin, distribution, version)

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists the registered ones."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            choices = sorted(self._entries)
            close = difflib.get_close_matches(str(name), choices, n=1)
            raise UnknownComponentError(self.kind, str(name), choices, close[0] if close else None) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def registration_order(self) -> list[str]:
        """The names in the order they were registered (built-ins first)."""
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Registries:
    """One :class:`Registry` per kind in :data:`KINDS`, plus the plugins that failed to load."""

    by_kind: dict[str, Registry] = field(default_factory=lambda: {k: Registry(k) for k in KINDS})
    load_errors: list[str] = field(default_factory=list)

    def __getitem__(self, kind: str) -> Registry:
        if kind not in self.by_kind:
            raise KeyError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.by_kind[kind]

    def all_entries(self) -> list[Entry]:
        return [e for kind in KINDS for e in self.by_kind[kind].entries()]
